//! A real PostgreSQL server for the tests that need one.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: there the server runs as an
//! unprivileged system user ([`PG_USER`], created when missing), with its data directory in
//! a fresh temporary directory owned by that user.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::TempDir;

/// The unprivileged user the server runs as when the tests run as root.
pub const PG_USER: &str = "ezthrottle-pg";

/// How long the server may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A PostgreSQL server on a free loopback port (trust authentication for the `postgres`
/// user, `fsync` off unless [`start_durable`](Self::start_durable)), stopped and its data
/// removed when dropped.
#[derive(Debug)]
pub struct PostgresServer {
    /// `postgres://postgres@127.0.0.1:port/postgres`.
    pub url: String,
    child: tokio::process::Child,
    pg_ctl: Option<PathBuf>,
    dir: PathBuf,
    root: bool,
    _data: TempDir,
}

/// Where the server binaries are: on `PATH`, or the newest Debian install.
fn binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin").join(name)))
            .filter(|candidate| candidate.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program args`, as [`PG_USER`] when running as root.
fn command(program: &Path, args: &[&str], root: bool) -> std::process::Command {
    if root {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", PG_USER, "--"]).arg(program).args(args);
        command
    } else {
        let mut command = std::process::Command::new(program);
        command.args(args);
        command
    }
}

fn ensure_user() {
    let exists = std::process::Command::new("id").arg(PG_USER).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if exists.is_ok_and(|status| status.success()) {
        return;
    }
    let created = std::process::Command::new("useradd")
        .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER])
        .status()
        .expect("run useradd");
    // A concurrent test may have created it first.
    let exists = std::process::Command::new("id").arg(PG_USER).stdout(Stdio::null()).status();
    assert!(created.success() || exists.is_ok_and(|status| status.success()), "could not create the user {PG_USER}");
}

impl PostgresServer {
    /// Starts one.
    ///
    /// # Panics
    /// If PostgreSQL is not installed (`apt-get install postgresql`), or does not start
    /// within 30 s.
    pub async fn start() -> Self {
        Self::start_with_fsync(false).await
    }

    /// Starts one that flushes every commit to disk (`fsync` on): for benchmarks, whose
    /// figures must include what a durable deployment pays.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub async fn start_durable() -> Self {
        Self::start_with_fsync(true).await
    }

    async fn start_with_fsync(fsync: bool) -> Self {
        let (Some(initdb), Some(postgres)) = (binary("initdb"), binary("postgres")) else {
            panic!("PostgreSQL is not installed (apt-get install postgresql; scripts/install-test-deps does it)");
        };
        let root = is_root();
        let data = TempDir::new("postgres");
        let dir = data.join("data");
        std::fs::create_dir_all(&dir).expect("create the data directory");
        if root {
            ensure_user();
            let owned = std::process::Command::new("chown")
                .args(["-R", &format!("{PG_USER}:")])
                .arg(data.path())
                .status()
                .expect("run chown");
            assert!(owned.success(), "chown the data directory to {PG_USER}");
        }
        let dir_arg = dir.to_str().expect("a UTF-8 temporary path");
        let init = command(&initdb, &["-D", dir_arg, "-U", "postgres", "--auth=trust", "--no-sync"], root)
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(init.status.success(), "initdb failed: {}", String::from_utf8_lossy(&init.stderr));
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
            listener.local_addr().expect("the listener's address").port()
        };
        let port_arg = port.to_string();
        let args = [
            "-D",
            dir_arg,
            "-p",
            &port_arg,
            "-k",
            dir_arg,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            if fsync { "fsync=on" } else { "fsync=off" },
            "-c",
            "max_connections=200",
        ];
        let mut child = tokio::process::Command::from(command(&postgres, &args, root))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start postgres");
        let stderr = child.stderr.take().expect("postgres's stderr");
        let mut lines = BufReader::new(stderr).lines();
        let ready = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("ready to accept connections") {
                    return true;
                }
            }
            false
        };
        let ready = tokio::time::timeout(READY_WITHIN, ready).await;
        assert!(matches!(ready, Ok(true)), "postgres did not become ready within {READY_WITHIN:?}");
        // Keep reading its log, so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Self { url, child, pg_ctl: binary("pg_ctl"), dir, root, _data: data }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Killing `runuser` would orphan the server: `pg_ctl` stops the server itself.
        if let (Some(pg_ctl), Some(dir)) = (&self.pg_ctl, self.dir.to_str()) {
            let _ = command(pg_ctl, &["-D", dir, "stop", "-m", "immediate", "-w"], self.root)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}
