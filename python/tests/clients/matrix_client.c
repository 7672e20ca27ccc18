/* A publisher and a subscriber on the Eclipse Paho C library (Debian's libpaho-mqtt-dev, the
 * library board applications are written with), driven by python/tests/test_broker_delivery.py.
 *
 *   matrix_client sub URI CLIENT_ID VERSION CAFILE FILTER QOS [FILTER QOS ...]
 *     Connects with a clean session, subscribes to each filter (one SUBSCRIBE each) and prints
 *     "ready GRANTED..." once every SUBACK arrived, then one line per message:
 *     "msg QOS DUP RETAIN TOPIC PAYLOAD". A lost connection prints "lost CAUSE". Disconnects and
 *     exits when its standard input closes.
 *   matrix_client pub URI CLIENT_ID VERSION CAFILE TOPIC COUNT PREFIX QOS[,QOS...]
 *     Publishes COUNT messages per QoS on TOPIC, the QoS taking turns, payload "PREFIX/QOS/I",
 *     with up to WINDOW QoS 1 and 2 messages in flight (counted by the library's delivery-complete
 *     callback: MQTTClient_waitForCompletion polls in 100 ms steps); exits 0 once every one is
 *     acknowledged.
 *
 * VERSION is 3 (MQTT 3.1) or 4 (MQTT 3.1.1); CAFILE is "-" for plain TCP and the CA file for an
 * ssl:// URI. Every failure is printed on stderr and makes the exit status non-zero.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTClient.h>

/* The library allows 10 QoS 1 and 2 messages in flight once `reliable` is off (1 otherwise) and,
 * at that limit, blocks MQTTClient_publish in 100 ms steps: staying below it keeps it streaming. */
#define WINDOW 8
#define TIMEOUT_MS 20000L

static int fail(const char *what, int rc) {
    fprintf(stderr, "matrix_client: %s failed: %d %s\n", what, rc, MQTTClient_strerror(rc));
    return 1;
}

static int on_message(void *context, char *topic, int topic_length, MQTTClient_message *message) {
    (void)context;
    (void)topic_length;
    printf("msg %d %d %d %s %.*s\n", message->qos, message->dup, message->retained, topic, message->payloadlen,
           (const char *)message->payload);
    fflush(stdout);
    MQTTClient_freeMessage(&message);
    MQTTClient_free(topic);
    return 1;
}

static void on_lost(void *context, char *cause) {
    (void)context;
    printf("lost %s\n", cause ? cause : "(no cause)");
    fflush(stdout);
}

static int connect_client(MQTTClient client, int version, const char *cafile) {
    MQTTClient_connectOptions options = MQTTClient_connectOptions_initializer;
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    options.keepAliveInterval = 60;
    options.cleansession = 1;
    options.MQTTVersion = version == 3 ? MQTTVERSION_3_1 : MQTTVERSION_3_1_1;
    options.connectTimeout = 10;
    options.reliable = 0;
    if (strcmp(cafile, "-") != 0) {
        ssl.trustStore = cafile;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        options.ssl = &ssl;
    }
    int rc = MQTTClient_connect(client, &options);
    return rc == MQTTCLIENT_SUCCESS ? 0 : fail("connect", rc);
}

static int subscribe(MQTTClient client, int version, const char *cafile, int pairs, char **args) {
    int rc = MQTTClient_setCallbacks(client, NULL, on_lost, on_message, NULL);
    if (rc != MQTTCLIENT_SUCCESS)
        return fail("setCallbacks", rc);
    if (connect_client(client, version, cafile))
        return 1;
    char granted[256] = "";
    for (int i = 0; i < pairs; i++) {
        /* One SUBSCRIBE per filter, as an application adding subscriptions does; the library
         * writes the granted QoS (or 0x80, a refusal) back into `qos`. */
        int qos = atoi(args[2 * i + 1]);
        rc = MQTTClient_subscribeMany(client, 1, &args[2 * i], &qos);
        if (rc != MQTTCLIENT_SUCCESS)
            return fail("subscribe", rc);
        size_t used = strlen(granted);
        snprintf(granted + used, sizeof granted - used, " %d", qos);
    }
    printf("ready%s\n", granted);
    fflush(stdout);
    /* Messages arrive on the library's thread until the test closes our standard input. */
    while (getchar() != EOF) {
    }
    rc = MQTTClient_disconnect(client, 5000);
    return rc == MQTTCLIENT_SUCCESS ? 0 : fail("disconnect", rc);
}

/* The publisher's acknowledged QoS 1 and 2 messages, counted on the library's thread. */
static pthread_mutex_t acks_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t acks_changed = PTHREAD_COND_INITIALIZER;
static long acknowledged = 0;
static int connection_lost = 0;

static void on_delivered(void *context, MQTTClient_deliveryToken token) {
    (void)context;
    (void)token;
    pthread_mutex_lock(&acks_lock);
    acknowledged++;
    pthread_cond_broadcast(&acks_changed);
    pthread_mutex_unlock(&acks_lock);
}

static void on_publisher_lost(void *context, char *cause) {
    (void)context;
    fprintf(stderr, "matrix_client: connection lost: %s\n", cause ? cause : "(no cause)");
    pthread_mutex_lock(&acks_lock);
    connection_lost = 1;
    pthread_cond_broadcast(&acks_changed);
    pthread_mutex_unlock(&acks_lock);
}

static int ignore_message(void *context, char *topic, int topic_length, MQTTClient_message *message) {
    (void)context;
    (void)topic_length;
    MQTTClient_freeMessage(&message);
    MQTTClient_free(topic);
    return 1;
}

/* Waits until at most `pending` sent QoS 1 and 2 messages are unacknowledged. */
static int wait_for_acks(long sent, long pending) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += TIMEOUT_MS / 1000;
    int status = 0;
    pthread_mutex_lock(&acks_lock);
    while (sent - acknowledged > pending && !connection_lost && status != ETIMEDOUT)
        status = pthread_cond_timedwait(&acks_changed, &acks_lock, &deadline);
    int ok = sent - acknowledged <= pending;
    pthread_mutex_unlock(&acks_lock);
    if (!ok)
        fprintf(stderr, "matrix_client: %ld of %ld messages unacknowledged\n", sent - acknowledged, sent);
    return ok ? 0 : 1;
}

static int publish(MQTTClient client, int version, const char *cafile, const char *topic, int count,
                   const char *prefix, const char *qos_list) {
    int levels[3], level_count = 0;
    for (const char *p = qos_list; *p && level_count < 3; p++)
        if (*p >= '0' && *p <= '2')
            levels[level_count++] = *p - '0';
    if (level_count == 0) {
        fprintf(stderr, "matrix_client: no QoS in %s\n", qos_list);
        return 1;
    }
    int rc = MQTTClient_setCallbacks(client, NULL, on_publisher_lost, ignore_message, on_delivered);
    if (rc != MQTTCLIENT_SUCCESS)
        return fail("setCallbacks", rc);
    if (connect_client(client, version, cafile))
        return 1;
    long sent = 0;
    for (int i = 0; i < count; i++) {
        for (int l = 0; l < level_count; l++) {
            char payload[128];
            int length = snprintf(payload, sizeof payload, "%s/%d/%d", prefix, levels[l], i);
            if (levels[l] > 0 && wait_for_acks(sent, WINDOW - 1))
                return 1;
            rc = MQTTClient_publish(client, topic, length, payload, levels[l], 0, NULL);
            if (rc != MQTTCLIENT_SUCCESS)
                return fail("publish", rc);
            if (levels[l] > 0)
                sent++;
        }
    }
    if (wait_for_acks(sent, 0))
        return 1;
    rc = MQTTClient_disconnect(client, 5000);
    return rc == MQTTCLIENT_SUCCESS ? 0 : fail("disconnect", rc);
}

int main(int argc, char **argv) {
    int is_sub = argc >= 8 && argc % 2 == 0 && strcmp(argv[1], "sub") == 0;
    int is_pub = argc == 10 && strcmp(argv[1], "pub") == 0;
    if (!is_sub && !is_pub) {
        fprintf(stderr, "usage: matrix_client sub URI CLIENT_ID VERSION CAFILE FILTER QOS [FILTER QOS ...]\n"
                        "       matrix_client pub URI CLIENT_ID VERSION CAFILE TOPIC COUNT PREFIX QOS[,QOS...]\n");
        return 2;
    }
    MQTTClient client;
    int rc = MQTTClient_create(&client, argv[2], argv[3], MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS)
        return fail("create", rc);
    int version = atoi(argv[4]);
    int status = is_sub ? subscribe(client, version, argv[5], (argc - 6) / 2, argv + 6)
                        : publish(client, version, argv[5], argv[6], atoi(argv[7]), argv[8], argv[9]);
    MQTTClient_destroy(&client);
    return status;
}
