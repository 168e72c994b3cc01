//! Server processes under test: spawned pinned to a core with `taskset`, waited for, sampled for
//! resident memory (`/proc/PID/status`), stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::client::{Proto, Req, Target};

/// A spawned server.
pub struct Server {
    pub child: Child,
}

impl Server {
    /// Spawns `program args…` pinned to `core`, output to `log`.
    pub fn spawn(
        core: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(core).arg(program).args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("spawn taskset -c {core} {}", program.display()))?;
        Ok(Self { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now, in MiB.
    pub fn rss_mb(&self) -> f64 {
        rss_kb(self.pid(), "VmRSS:") as f64 / 1024.0
    }

    /// Stops it with SIGTERM (graceful), SIGKILL after 10 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        if let Some(pid) = i32::try_from(self.pid()).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    /// A run that failed half-way leaves no server behind.
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// A field of `/proc/PID/status` in kB (0 if unreadable).
pub fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The contents of `path` once a starting server has written it (a CA certificate), waiting up to
/// 60 s from `since`; `log` is named in the error.
pub async fn wait_for_file(path: &Path, since: Instant, log: &Path) -> anyhow::Result<Vec<u8>> {
    loop {
        if let Ok(bytes) = std::fs::read(path)
            && !bytes.is_empty()
        {
            return Ok(bytes);
        }
        if since.elapsed() > Duration::from_secs(60) {
            bail!("the server did not write {} (see {})", path.display(), log.display());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Polls `GET path` on `target` until it answers `ok`; returns how long that took from `since`.
pub async fn wait_ready(
    target: &Target,
    path: &str,
    ok: u16,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    loop {
        if since.elapsed() > timeout {
            bail!("{} not ready after {:?}", target.authority, timeout);
        }
        if let Ok(mut c) = target.connect(Proto::H1).await
            && let Ok((status, _)) = c.send(&Req::get(path)).await
            && status == ok
        {
            return Ok(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Samples a process's RSS every 50 ms until dropped; `peak_mb` is the largest seen.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak_kb: Arc<AtomicU64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kb = Arc::new(AtomicU64::new(rss_kb(pid, "VmRSS:")));
        let (s, p) = (stop.clone(), peak_kb.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kb(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { stop, peak_kb }
    }

    pub fn peak_mb(&self) -> f64 {
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `dir/name`, created fresh.
pub fn fresh_dir(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    if p.exists() {
        std::fs::remove_dir_all(&p).with_context(|| format!("remove {}", p.display()))?;
    }
    std::fs::create_dir_all(&p)?;
    Ok(p)
}
