//! A gateway running in-process, for end-to-end tests that reach its mock buses.

use std::time::Duration;

use runtime::{Bus, Counters, RuntimeError, Settings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The runtime on a tokio task, stopped as SIGTERM would stop it.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<Counters, RuntimeError>>,
}

impl Running {
    /// Starts a gateway with a fast health tick; its log goes to the test's output.
    pub fn start(mut settings: Settings, buses: Vec<Bus>) -> Running {
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,rumqttc=warn").try_init();
        settings.health_interval = Duration::from_millis(100);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(runtime::run(settings, buses, async {
            let _ = stopped.await;
        }));
        Running { stop: Some(stop), task }
    }

    /// Stops the gateway cleanly and returns its counters.
    pub async fn stop(mut self) -> Counters {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(crate::TIMEOUT, &mut self.task).await.unwrap().unwrap().unwrap()
    }
}
