//! Beam's job servers as child processes: Beam Python's local job service and Prism (Beam's Go
//! runner), the job servers the tests (and a user trying the portable runner on one machine)
//! start.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python of the venv holding apache-beam: `$RUNNEL_BEAM_VENV/bin/python`, by default
/// `/opt/beam-venv/bin/python` (where `scripts/beam-venv.sh` installs apache-beam 2.77.0).
pub fn beam_python() -> PathBuf {
    let venv = std::env::var("RUNNEL_BEAM_VENV").unwrap_or_else(|_| "/opt/beam-venv".to_string());
    PathBuf::from(venv).join("bin/python")
}

/// Runs the job service's main module, exiting the process when stdin reaches its end.
const WATCH_STDIN_THEN_RUN: &str = "import logging, os, signal, sys, threading
from apache_beam.runners.portability import local_job_service_main as service
def watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
signal.signal(signal.SIGTERM, lambda *args: os._exit(0))
logging.basicConfig()
service.run(sys.argv[1:])
os._exit(0)
";

/// A running `apache_beam.runners.portability.local_job_service_main`, killed when dropped or
/// when this process ends.
pub struct LocalJobService {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl LocalJobService {
    /// Starts it on a free port and waits (up to a minute) until it listens. Fails, naming the
    /// fix, when the venv is missing.
    pub fn start() -> Result<LocalJobService, String> {
        let python = beam_python();
        if !python.exists() {
            return Err(format!(
                "{} is missing: run scripts/beam-venv.sh (or set RUNNEL_BEAM_VENV) to install apache-beam 2.77.0",
                python.display()
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port_file = dir.path().join("port");
        // The service also ends when its stdin closes, which happens when this process ends in
        // any way: a service held for a whole test binary (never dropped) does not outlive it.
        let child = Command::new(&python)
            .args(["-c", WATCH_STDIN_THEN_RUN, "--port", "0", "--port_file"])
            .arg(&port_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Beam Python's job service: {e}"))?;
        let mut service = LocalJobService { child, endpoint: String::new(), _dir: dir };
        // The port file holds `HOST:PORT` or the port; it is written once the server listens.
        service.endpoint = wait_until_ready(&mut service.child, "Beam Python's job service", || {
            let port = std::fs::read_to_string(&port_file).ok()?;
            port.trim().rsplit(':').next().filter(|p| !p.is_empty()).map(|p| format!("localhost:{p}"))
        })?;
        Ok(service)
    }

    /// `HOST:PORT` for `--job-endpoint`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for LocalJobService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Prism is: `$RUNNEL_PRISM`, or `prism` in Go's bin directory (`$GOBIN`, else
/// `$GOPATH/bin`, else `~/go/bin`), where `scripts/prism.sh` installs it.
pub fn prism_binary() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNEL_PRISM") {
        return PathBuf::from(p);
    }
    let bin = std::env::var("GOBIN").ok().filter(|b| !b.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        let gopath = std::env::var("GOPATH").ok().filter(|p| !p.is_empty()).map(PathBuf::from);
        gopath.unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join("go")).join("bin")
    });
    bin.join("prism")
}

/// Prism (Beam's Go portable runner) as a child process, killed when dropped or when this
/// process ends.
pub struct LocalPrism {
    child: Child,
    endpoint: String,
}

impl LocalPrism {
    /// Starts it on a free port and waits (up to a minute) until it accepts connections. Fails,
    /// naming the fix, when the binary is missing. `RUNNEL_PRISM_LOG=FILE` keeps Prism's debug
    /// log, for diagnosing a job.
    pub fn start() -> Result<LocalPrism, String> {
        LocalPrism::start_with_log(std::env::var_os("RUNNEL_PRISM_LOG").as_deref().map(std::path::Path::new))
    }

    /// As [`LocalPrism::start`], with Prism's debug log appended to `log` if given.
    pub fn start_with_log(log: Option<&std::path::Path>) -> Result<LocalPrism, String> {
        let prism = prism_binary();
        if !prism.exists() {
            return Err(format!(
                "{} is missing: run scripts/prism.sh (or set RUNNEL_PRISM) to install Beam's Prism runner",
                prism.display()
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for Prism: {e}"))?
            .port();
        let log = match log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot write the Prism log: {e}"))?,
            ),
            None => None,
        };
        // `sh` runs Prism and kills it when its stdin closes, which happens when this process
        // ends in any way.
        let child = Command::new("sh")
            .args(["-c", "\"$0\" \"$@\" & pid=$!; cat >/dev/null; kill $pid"])
            .arg(&prism)
            .args(["-job_port", &port.to_string(), "-serve_http=false", "-log_level"])
            .arg(if log.is_some() { "debug" } else { "warn" })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null))
            .spawn()
            .map_err(|e| format!("cannot start Prism: {e}"))?;
        let mut prism = LocalPrism { child, endpoint: format!("localhost:{port}") };
        wait_until_ready(&mut prism.child, "Prism", || std::net::TcpStream::connect(("127.0.0.1", port)).ok())?;
        Ok(prism)
    }
    /// `HOST:PORT` for `--job-endpoint`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for LocalPrism {
    fn drop(&mut self) {
        // Closing stdin makes the shell kill Prism.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Polls `ready` until it gives a value, failing when the job server `child` exits first or a
/// minute passes.
fn wait_until_ready<T>(child: &mut Child, server: &str, mut ready: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = ready() {
            return Ok(value);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{server} exited at start: {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("{server} was not ready within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
