//! Runs test binaries inside a qemu VM that boots the host's Debian kernel, for code that needs
//! kernel features a CI container lacks: SocketCAN on `vcan` interfaces, `i2c-stub` chips.
//!
//! The guest is a small initramfs: busybox as the shell, iproute2's `ip` (busybox's cannot
//! create vcan interfaces), the kernel modules the setup needs, and the host binaries to run
//! with their shared libraries (found with `ldd`), at the same paths as on the host. The part
//! that does not change between runs (busybox, `ip`, modules) is built once per kernel and
//! cached under the target directory; each run appends a second, uncompressed archive with
//! its `/init` script and binaries (the kernel unpacks concatenated archives in order, and
//! nothing is decompressed by the emulated CPU). qemu runs without KVM and without a network.
//!
//! Integration tests use the "run myself in the VM" pattern of [`run_self_test`]: on the host
//! the test boots the VM with its own test binary and asserts that the same test passed in
//! there; inside the VM (`BUSGATE_IN_VM` is set) it runs the test's body.
//!
//! When qemu, the kernel or busybox is missing the test says so and passes, unless
//! `BUSGATE_REQUIRE_VM` is set, as in CI (`.ci/run` installs them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Set (to `1`) in the guest for the payload: [`run_self_test`] runs the body when it is set.
pub const IN_VM: &str = "BUSGATE_IN_VM";

/// When set, a missing VM fails the test instead of skipping it.
pub const REQUIRE_VM: &str = "BUSGATE_REQUIRE_VM";

/// How long a whole VM run may take, boot included, unless [`VmSetup::timeout`] says otherwise.
/// Booting takes about 10 s under software emulation; a loaded CI machine is slower.
pub const VM_TIMEOUT: Duration = Duration::from_secs(180);

/// The line the guest's init prints before the payload, to tell boot time from test time.
const BOOTED: &str = "@@busgate-vm booted";

/// The line the guest's init prints after the payload, followed by its exit status.
const EXIT: &str = "@@busgate-vm exit ";

/// qemu's minimal firmware (package qemu-system-data, which qemu-system-x86 depends on).
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// Bumped whenever the cached base archive's content or layout changes.
const BASE_FORMAT: u32 = 1;

/// Kernel modules the guest may load, by the name `modules.dep` knows them under.
const CAN_MODULES: [&str; 4] = ["can", "can-raw", "can-bcm", "vcan"];
const I2C_MODULES: [&str; 2] = ["i2c-dev", "i2c-stub"];

/// What the guest sets up before it runs the payload.
#[derive(Debug, Clone)]
pub struct VmSetup<'a> {
    /// vcan interfaces to create and bring up (loads the CAN modules when not empty).
    pub vcan: &'a [&'a str],
    /// Gives the vcan interfaces the CAN FD MTU (72), so they carry FD frames too.
    pub vcan_fd: bool,
    /// 7-bit addresses of `i2c-stub` chips (loads `i2c-stub` and `i2c-dev` when not empty):
    /// they appear on `/dev/i2c-0` as plain register files.
    pub i2c_stub: &'a [u8],
    /// More host binaries to copy into the guest, at the same paths, with their libraries.
    pub binaries: &'a [&'a Path],
    /// Environment variables for the payload (the host's `RUST_LOG` and `RUST_BACKTRACE` are
    /// passed on already).
    pub env: &'a [(&'a str, &'a str)],
    /// The limit for the whole run, boot included; qemu is killed when it is reached.
    pub timeout: Duration,
}

impl Default for VmSetup<'_> {
    fn default() -> Self {
        VmSetup { vcan: &[], vcan_fd: false, i2c_stub: &[], binaries: &[], env: &[], timeout: VM_TIMEOUT }
    }
}

/// What a VM run printed and how it ended.
#[derive(Debug, Clone)]
pub struct VmOutput {
    /// The payload's exit status; `None` when the guest never reported one (setup failed,
    /// kernel panic, timeout).
    pub status: Option<i32>,
    /// Everything the guest printed on its console (kernel messages, setup, payload), and
    /// what qemu printed on stderr.
    pub output: String,
    /// From starting qemu until the guest's init began the setup.
    pub boot: Duration,
    /// From starting qemu until the payload's exit status arrived (or the run ended).
    pub total: Duration,
}

impl VmOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// qemu, the host's kernel with its modules and busybox: what booting a VM needs.
#[derive(Debug, Clone)]
pub struct Vm {
    qemu: PathBuf,
    kernel: PathBuf,
    release: String,
    modules: PathBuf,
    busybox: PathBuf,
    ip: Option<PathBuf>,
}

impl Vm {
    /// Finds qemu, the newest `/boot/vmlinuz-*` that has its modules installed, and busybox;
    /// the error says what is missing.
    pub fn find() -> Result<Vm> {
        let qemu = find_program("qemu-system-x86_64").context("qemu-system-x86_64 is not installed")?;
        let mut kernels: Vec<(String, PathBuf)> = std::fs::read_dir("/boot")
            .context("reading /boot")?
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let release = path.file_name()?.to_str()?.strip_prefix("vmlinuz-")?.to_owned();
                Path::new("/lib/modules").join(&release).join("modules.dep").exists().then_some((release, path))
            })
            .collect();
        kernels.sort_by_key(|(release, _)| version_key(release));
        let (release, kernel) = kernels.pop().context("no /boot/vmlinuz-* with its modules under /lib/modules")?;
        File::open(&kernel).with_context(|| format!("{} is not readable", kernel.display()))?;
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("busybox is not installed")?;
        let ip =
            ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].into_iter().map(PathBuf::from).find(|p| p.exists());
        let modules = Path::new("/lib/modules").join(&release);
        Ok(Vm { qemu, kernel, release, modules, busybox, ip })
    }

    /// [`Vm::find`] for a test: `None` (after saying why the test is skipped) when there is no
    /// VM, or a panic when `BUSGATE_REQUIRE_VM` is set.
    pub fn find_or_skip(test: &str) -> Option<Vm> {
        match Vm::find() {
            Ok(vm) => Some(vm),
            Err(error) => {
                assert!(
                    std::env::var_os(REQUIRE_VM).is_none(),
                    "{test}: a VM is required ({REQUIRE_VM} is set) but unavailable: {error:#}"
                );
                eprintln!(
                    "skipping {test}: no VM ({error:#}); install qemu-system-x86, linux-image-amd64, \
                     busybox-static and iproute2 to run it (see .ci/run)"
                );
                None
            }
        }
    }

    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// Boots the VM, sets it up, runs `command` with `sh -c` as the payload, and returns what
    /// the guest printed and the payload's exit status. Fails only when the VM cannot be
    /// built or started; a payload that fails or never finishes is in the [`VmOutput`].
    pub fn run(&self, setup: &VmSetup<'_>, command: &str) -> Result<VmOutput> {
        let base = self.base_archive()?;
        let dir = crate::temp_dir("vm");
        let initrd = dir.join("initrd.cpio");
        let result = self.write_initrd(&base, &initrd, setup, command).and_then(|()| self.boot(&initrd, setup.timeout));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// The cached archive with busybox, `ip` and the modules, built when missing.
    fn base_archive(&self) -> Result<PathBuf> {
        // One build at a time in this process; other processes may race, and each renames a
        // complete file into place.
        static BUILDING: Mutex<()> = Mutex::new(());
        let _guard = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let modules = self.module_files()?;
        let mut inputs = vec![self.busybox.clone()];
        inputs.extend(self.ip.clone());
        inputs.extend(modules.values().cloned());
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        BASE_FORMAT.hash(&mut hasher);
        for input in &inputs {
            input.hash(&mut hasher);
            let metadata = std::fs::metadata(input).with_context(|| format!("reading {}", input.display()))?;
            metadata.len().hash(&mut hasher);
            metadata.modified().ok().hash(&mut hasher);
        }
        let cache = crate::bin_dir().join("busgate-vm");
        let path = cache.join(format!("base-{}-{:016x}.cpio", self.release, hasher.finish()));
        if path.exists() {
            return Ok(path);
        }
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        let partial = cache.join(format!("base.{}.partial", std::process::id()));
        let mut archive = Cpio::create(&partial)?;
        archive.node("dev/console", 0o020_600, (5, 1))?;
        for dir in ["proc", "sys", "tmp", "run", "root", "modules"] {
            archive.dir(dir)?;
        }
        archive.host_binary(&self.busybox, Some("bin/busybox"))?;
        archive.symlink("bin/sh", "busybox")?;
        if let Some(ip) = &self.ip {
            archive.host_binary(ip, None)?;
        }
        for (name, file) in &modules {
            let data = read_module(file)?;
            archive.file(&format!("modules/{name}.ko"), 0o644, &mut data.as_slice(), data.len() as u64)?;
        }
        archive.finish()?;
        std::fs::rename(&partial, &path).with_context(|| format!("renaming {} into place", partial.display()))?;
        Ok(path)
    }

    /// The module files of [`CAN_MODULES`] and [`I2C_MODULES`] and their dependencies, by name.
    fn module_files(&self) -> Result<BTreeMap<String, PathBuf>> {
        let dep = self.module_dependencies()?;
        let mut files = BTreeMap::new();
        for name in CAN_MODULES.iter().chain(&I2C_MODULES) {
            for needed in self.load_order(&dep, name)? {
                let (relative, _) = &dep[&needed];
                files.insert(needed, self.modules.join(relative));
            }
        }
        Ok(files)
    }

    /// `modules.dep` as module name → (file relative to the modules dir, dependency names).
    fn module_dependencies(&self) -> Result<BTreeMap<String, (String, Vec<String>)>> {
        let path = self.modules.join("modules.dep");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut dep = BTreeMap::new();
        for line in text.lines() {
            let Some((file, needs)) = line.split_once(':') else { continue };
            let needs = needs.split_whitespace().map(module_name).collect();
            dep.insert(module_name(file), (file.to_owned(), needs));
        }
        Ok(dep)
    }

    /// The modules to load for `name`, dependencies first; built-in modules are left out.
    fn load_order(&self, dep: &BTreeMap<String, (String, Vec<String>)>, name: &str) -> Result<Vec<String>> {
        fn visit(
            dep: &BTreeMap<String, (String, Vec<String>)>,
            name: &str,
            order: &mut Vec<String>,
        ) -> std::result::Result<(), String> {
            if order.iter().any(|n| n == name) {
                return Ok(());
            }
            let (_, needs) = dep.get(name).ok_or_else(|| name.to_owned())?;
            for need in needs {
                visit(dep, need, order)?;
            }
            order.push(name.to_owned());
            Ok(())
        }
        let builtin = std::fs::read_to_string(self.modules.join("modules.builtin")).unwrap_or_default();
        if builtin.lines().any(|line| module_name(line) == name) {
            return Ok(Vec::new());
        }
        let mut order = Vec::new();
        visit(dep, name, &mut order).map_err(|missing| {
            anyhow::anyhow!("kernel {} has no module {missing} (needed for {name})", self.release)
        })?;
        Ok(order)
    }

    /// Writes the base archive followed by this run's `/init` and binaries.
    fn write_initrd(&self, base: &Path, initrd: &Path, setup: &VmSetup<'_>, command: &str) -> Result<()> {
        std::fs::copy(base, initrd).with_context(|| format!("copying {}", base.display()))?;
        let file = std::fs::OpenOptions::new().append(true).open(initrd).context("opening the initrd")?;
        let mut archive = Cpio::new(file);
        let init = self.init_script(setup, command)?;
        archive.file("init", 0o755, &mut init.as_bytes(), init.len() as u64)?;
        for binary in setup.binaries {
            archive.host_binary(binary, None)?;
        }
        archive.finish()
    }

    fn init_script(&self, setup: &VmSetup<'_>, command: &str) -> Result<String> {
        let dep = self.module_dependencies()?;
        let mut load = Vec::new();
        if !setup.vcan.is_empty() {
            for name in CAN_MODULES {
                load.extend(self.load_order(&dep, name)?);
            }
        }
        if !setup.i2c_stub.is_empty() {
            for name in I2C_MODULES {
                load.extend(self.load_order(&dep, name)?);
            }
        }
        let mut loaded = BTreeSet::new();
        // No tmpfs on /tmp: the initramfs is writable already, and a checkout under /tmp (the
        // test binaries are at their host paths) would be hidden by it ("not found").
        let mut script = String::from(
            "#!/bin/busybox sh\n\
             /bin/busybox --install -s /bin\n\
             export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root\n\
             mount -t proc proc /proc\n\
             mount -t sysfs sysfs /sys\n\
             mount -t devtmpfs devtmpfs /dev\n\
             mount -t tmpfs tmpfs /run\n\
             cd /root\n",
        );
        writeln!(script, "echo {BOOTED}")?;
        // Each step runs only if the ones before it succeeded (`set -e` would be ignored in
        // the `if` that tests the setup).
        let mut steps = vec!["true".to_owned()];
        for name in load {
            if !loaded.insert(name.clone()) {
                continue;
            }
            let parameters = if name == "i2c-stub" {
                let addresses: Vec<String> = setup.i2c_stub.iter().map(|a| format!("0x{a:02x}")).collect();
                format!(" chip_addr={}", addresses.join(","))
            } else {
                String::new()
            };
            steps.push(format!("insmod /modules/{name}.ko{parameters}"));
        }
        if !setup.vcan.is_empty() && self.ip.is_none() {
            bail!("vcan interfaces need iproute2's ip, which is not installed");
        }
        for interface in setup.vcan {
            let interface = quote(interface);
            steps.push(format!("ip link add dev {interface} type vcan"));
            if setup.vcan_fd {
                steps.push(format!("ip link set {interface} mtu 72"));
            }
            steps.push(format!("ip link set {interface} up"));
        }
        writeln!(script, "setup() {{\n  {}\n}}", steps.join(" &&\n  "))?;
        for name in ["RUST_LOG", "RUST_BACKTRACE"] {
            if let Ok(value) = std::env::var(name) {
                writeln!(script, "export {name}={}", quote(&value))?;
            }
        }
        writeln!(script, "export {IN_VM}=1")?;
        for (name, value) in setup.env {
            writeln!(script, "export {name}={}", quote(value))?;
        }
        writeln!(script, "if setup; then\n  sh -c {}\n  status=$?\nelse\n  echo setup failed\nfi", quote(command))?;
        // The status goes out on a line of its own after everything else the payload printed.
        writeln!(script, "echo\necho \"{EXIT}${{status:-setup}}\"\npoweroff -f")?;
        Ok(script)
    }

    fn boot(&self, initrd: &Path, timeout: Duration) -> Result<VmOutput> {
        let start = Instant::now();
        let mut qemu = Command::new(&self.qemu);
        // qboot, qemu's minimal firmware for booting a kernel directly, starts the kernel
        // seconds sooner than the default SeaBIOS under software emulation.
        if Path::new(QBOOT).exists() {
            qemu.args(["-bios", QBOOT]);
        }
        let mut child = qemu
            .args(["-machine", "pc", "-cpu", "max", "-smp", "1", "-m", "1G"])
            .args(["-nodefaults", "-display", "none", "-serial", "stdio", "-nic", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", "console=ttyS0 quiet panic=-1 mitigations=off random.trust_cpu=on"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.qemu.display()))?;
        let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
        for (is_stdout, stream) in [
            (true, child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
            (false, child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
        ] {
            let Some(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                let mut buffer = [0; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buffer) {
                    pending.extend_from_slice(&buffer[..n]);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
                        if tx.send((is_stdout, line)).is_err() {
                            return;
                        }
                    }
                }
                if !pending.is_empty() {
                    let _ = tx.send((is_stdout, String::from_utf8_lossy(&pending).into_owned()));
                }
            });
        }
        drop(tx);
        let deadline = start + timeout;
        let mut output = String::new();
        let mut boot = None;
        let mut status = None;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((is_stdout, line)) => {
                    if is_stdout && line == BOOTED {
                        boot = Some(start.elapsed());
                    } else if let Some(code) = line.strip_prefix(EXIT).filter(|_| is_stdout) {
                        status = code.trim().parse().ok();
                        if status.is_none() {
                            output.push_str("(the guest's setup failed)\n");
                        }
                        break;
                    }
                    if !is_stdout {
                        output.push_str("qemu: ");
                    }
                    output.push_str(&line);
                    output.push('\n');
                }
                // qemu exited (both streams closed) without reporting a status.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    writeln!(output, "(timed out after {timeout:?}; qemu killed)")?;
                    break;
                }
            }
        }
        let total = start.elapsed();
        // The payload is done: nothing in the guest needs a clean shutdown.
        let _ = child.kill();
        let _ = child.wait();
        Ok(VmOutput { status, output, boot: boot.unwrap_or(total), total })
    }
}

/// The "run myself in the VM" pattern for an integration test named `name` (its path as
/// libtest prints it, e.g. `frames_round_trip` or `module::frames_round_trip`).
///
/// Inside the VM, runs `body`. On the host, boots the VM with the running test binary and
/// runs `<binary> --exact NAME` in there; fails showing the guest's output unless exactly
/// that test ran and passed. Skips (or fails under `BUSGATE_REQUIRE_VM`) when there is no VM.
///
/// ```no_run
/// use test_support::vm::{self, VmSetup};
///
/// #[test]
/// fn frames_round_trip() {
///     vm::run_self_test("frames_round_trip", &VmSetup { vcan: &["vcan0"], ..VmSetup::default() }, || {
///         // Runs in the VM, where vcan0 is up.
///     });
/// }
/// ```
#[track_caller]
pub fn run_self_test(name: &str, setup: &VmSetup<'_>, body: impl FnOnce()) {
    if std::env::var_os(IN_VM).is_some() {
        body();
        return;
    }
    let Some(vm) = Vm::find_or_skip(name) else { return };
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut binaries = vec![exe.as_path()];
    binaries.extend_from_slice(setup.binaries);
    let setup = VmSetup { binaries: &binaries, ..setup.clone() };
    let command = format!("{} --exact {} --nocapture --test-threads=1", quote(&exe.display().to_string()), quote(name));
    let output = vm.run(&setup, &command).unwrap_or_else(|e| panic!("{name}: starting the VM: {e:#}"));
    // libtest's summary: anything else means the name matched no test, or more than one.
    let ran_once = output.output.contains("test result: ok. 1 passed;");
    assert!(
        !output.success() || ran_once,
        "{name}: no test of that exact name ran in the VM; pass the test's path as libtest prints it:\n{}",
        output.output
    );
    assert!(
        output.success(),
        "{name} failed in the VM (kernel {}, exit status {:?}, after {:?}):\n{}",
        vm.release(),
        output.status,
        output.total,
        output.output
    );
    println!("{}", output.output);
    eprintln!(
        "{name}: passed in the VM (kernel {}): booted in {:.1} s, result after {:.1} s",
        vm.release(),
        output.boot.as_secs_f64(),
        output.total.as_secs_f64()
    );
}

/// Runs `command` (e.g. `["ip", "link", "del", "vcan0"]`) in the guest and fails the test
/// unless it succeeds: for test bodies that change the guest's setup midway.
#[track_caller]
pub fn guest_command(command: &[&str]) {
    assert!(std::env::var_os(IN_VM).is_some(), "guest_command runs only inside the VM");
    let (program, args) = command.split_first().expect("a command");
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// An initramfs archive in the cpio "newc" format the kernel unpacks.
struct Cpio {
    out: BufWriter<File>,
    written: BTreeSet<String>,
    inode: u32,
}

impl Cpio {
    fn create(path: &Path) -> Result<Cpio> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Cpio::new(file))
    }

    fn new(file: File) -> Cpio {
        Cpio { out: BufWriter::new(file), written: BTreeSet::new(), inode: 1 }
    }

    /// A directory, and its parents first (the kernel creates nothing on its own).
    fn dir(&mut self, path: &str) -> Result<()> {
        if path.is_empty() || self.written.contains(path) {
            return Ok(());
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.entry(path, 0o040_755, 0, (0, 0))?;
        self.written.insert(path.to_owned());
        Ok(())
    }

    fn parent(&mut self, path: &str) -> Result<()> {
        match path.rsplit_once('/') {
            Some((parent, _)) => self.dir(parent),
            None => Ok(()),
        }
    }

    fn file(&mut self, path: &str, mode: u32, data: &mut dyn Read, len: u64) -> Result<()> {
        self.parent(path)?;
        self.entry(path, 0o100_000 | mode, len, (0, 0))?;
        let copied = std::io::copy(data, &mut self.out)?;
        if copied != len {
            bail!("{path} changed while it was archived ({len} bytes expected, {copied} copied)");
        }
        self.pad(len)?;
        self.written.insert(path.to_owned());
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.parent(path)?;
        self.entry(path, 0o120_777, target.len() as u64, (0, 0))?;
        self.out.write_all(target.as_bytes())?;
        self.pad(target.len() as u64)
    }

    fn node(&mut self, path: &str, mode: u32, device: (u32, u32)) -> Result<()> {
        self.parent(path)?;
        self.entry(path, mode, 0, device)
    }

    /// A host file at `archived` (its own path when `None`), and its libraries and dynamic
    /// loader at the paths `ldd` names.
    fn host_binary(&mut self, path: &Path, archived: Option<&str>) -> Result<()> {
        let name =
            archived.map_or_else(|| path.display().to_string().trim_start_matches('/').to_owned(), str::to_owned);
        let mut files = vec![(path.to_owned(), name)];
        for library in shared_libraries(path)? {
            let name = library.display().to_string().trim_start_matches('/').to_owned();
            files.push((library, name));
        }
        for (index, (file, name)) in files.into_iter().enumerate() {
            if self.written.contains(&name) {
                continue;
            }
            // A debug test binary is mostly debug info (100 MB of it), which the guest would
            // spend seconds unpacking; without it, panics still say where and backtraces
            // still name the functions. Libraries are small and already stripped.
            let stripped = if index == 0 { strip_debug_info(&file) } else { None };
            let source = stripped.as_ref().map_or(file.as_path(), |(_, stripped)| stripped.as_path());
            let mut data = File::open(source).with_context(|| format!("opening {}", source.display()))?;
            let len = data.metadata()?.len();
            self.file(&name, 0o755, &mut data, len).with_context(|| format!("archiving {}", file.display()))?;
            if let Some((dir, _)) = stripped {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, size: u64, (rdev_major, rdev_minor): (u32, u32)) -> Result<()> {
        let size = u32::try_from(size).with_context(|| format!("{name} is too large for an initramfs"))?;
        let name_size = name.len() + 1;
        let header = format!(
            "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{size:08x}{:08x}{:08x}{rdev_major:08x}{rdev_minor:08x}{name_size:08x}{:08x}",
            self.inode, 0, 0, 1, 0, 0, 0, 0
        );
        self.inode += 1;
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad((header.len() + name_size) as u64)
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let padding = (4 - len % 4) % 4;
        self.out.write_all(&[0; 3][..padding as usize])?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.entry("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(())
    }
}

/// A copy of `binary` without debug info, in a new temporary directory, when binutils'
/// `objcopy` is installed and succeeds.
fn strip_debug_info(binary: &Path) -> Option<(PathBuf, PathBuf)> {
    let objcopy = find_program("objcopy")?;
    let dir = crate::temp_dir("vm-strip");
    let stripped = dir.join("binary");
    let status = Command::new(objcopy).arg("--strip-debug").arg(binary).arg(&stripped).stderr(Stdio::null()).status();
    if status.is_ok_and(|s| s.success()) {
        Some((dir, stripped))
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        None
    }
}

/// The shared libraries and dynamic loader of a host binary, as `ldd` lists them (none for a
/// static binary).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(binary).output().context("running ldd")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // "not a dynamic executable": nothing to copy.
        return Ok(Vec::new());
    }
    let mut libraries = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            bail!("{}: a library is missing: {}", binary.display(), line.trim());
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)";
        // the vDSO has no path.
        let path = line.split_once("=>").map_or(line, |(_, path)| path).split_whitespace().next();
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// A module's contents, decompressed on the host when the file is compressed (busybox's
/// insmod may not decompress, and the kernel may not either).
fn read_module(file: &Path) -> Result<Vec<u8>> {
    let name = file.display().to_string();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => std::fs::read(file).with_context(|| format!("reading {name}")),
        Some(tool) => {
            let output = Command::new(tool).arg("-dc").arg(file).output().with_context(|| format!("running {tool}"))?;
            if !output.status.success() {
                bail!("{tool} -dc {name}: {}", String::from_utf8_lossy(&output.stderr));
            }
            Ok(output.stdout)
        }
    }
}

/// `kernel/net/can/can-raw.ko.xz` → `can-raw`.
fn module_name(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.split(".ko").next().unwrap_or(base).replace('_', "-")
}

/// Orders kernel releases numerically: `6.10.0` after `6.9.2`.
fn version_key(release: &str) -> Vec<u64> {
    release.split(|c: char| !c.is_ascii_digit()).filter_map(|part| part.parse().ok()).collect()
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A word for `sh`, single-quoted.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_drop_directories_and_suffixes() {
        assert_eq!(module_name("kernel/net/can/can-raw.ko.xz"), "can-raw");
        assert_eq!(module_name("kernel/drivers/i2c/i2c-stub.ko"), "i2c-stub");
        assert_eq!(module_name("kernel/drivers/net/can/dev/can_dev.ko.zst"), "can-dev");
    }

    #[test]
    fn kernel_releases_order_numerically() {
        assert!(version_key("6.10.0-1-amd64") > version_key("6.9.2-3-amd64"));
    }

    #[test]
    fn shell_words_survive_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
