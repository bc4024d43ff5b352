//! A real `redis-server` started by the harness for the Redis rate-limit backend.

use std::time::Duration;

/// A real `redis-server` on a free loopback port, stopped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one on a free port. Without `redis-server` installed the test is skipped with a
    /// note — unless `ORDERGATE_REQUIRE_REDIS` is set (CI sets it), then it fails.
    pub async fn start() -> Option<Self> {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok();
        if !installed {
            assert!(
                std::env::var_os("ORDERGATE_REQUIRE_REDIS").is_none(),
                "redis-server is required (ORDERGATE_REQUIRE_REDIS is set): apt-get install redis-server"
            );
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        // A port found free may be taken before the server binds it (by another test's server,
        // which would then answer for this one): another port then.
        for _ in 0..5 {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            if let Some(server) = Self::try_start_on(port).await {
                return Some(server);
            }
        }
        panic!("redis-server did not come up on a free port");
    }

    /// Starts one on `port` (to bring a stopped server back).
    pub async fn start_on(port: u16) -> Self {
        match Self::try_start_on(port).await {
            Some(server) => server,
            None => panic!("redis-server did not come up on port {port}"),
        }
    }

    /// Starts one on `port`; `None` when it is not this server that answers there.
    async fn try_start_on(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests (apt-get install redis-server)");
        let mut server = Self {
            port,
            child: Some(child),
        };
        for _ in 0..500 {
            if server.answers() {
                return Some(server);
            }
            let exited = server
                .child
                .as_mut()
                .is_none_or(|child| child.try_wait().ok().flatten().is_some());
            if exited {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// True when the server on the port is this one (its process id), not another test's.
    fn answers(&self) -> bool {
        let Some(pid) = self.child.as_ref().map(std::process::Child::id) else {
            return false;
        };
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("INFO")
            .arg("server")
            .query::<String>(&mut con)
            .is_ok_and(|info| {
                info.lines()
                    .any(|l| l.trim() == format!("process_id:{pid}"))
            })
    }

    /// Runs `command` on a connection of its own.
    fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let client = redis::Client::open(self.url()).unwrap();
        let mut con = client.get_connection().unwrap();
        command.query(&mut con).unwrap()
    }

    /// Keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.query(redis::cmd("KEYS").arg(pattern))
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<String> {
        self.query(redis::cmd("GET").arg(key))
    }

    /// Sets `key` to `value` for `millis` milliseconds.
    pub fn set_px(&self, key: &str, value: &str, millis: u64) {
        self.query::<()>(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis));
    }

    /// Sets the `fields` of the hash `key`.
    pub fn hset(&self, key: &str, fields: &[(&str, &str)]) {
        let mut command = redis::cmd("HSET");
        command.arg(key);
        for (field, value) in fields {
            command.arg(*field).arg(*value);
        }
        self.query::<()>(&command);
    }

    /// Deletes `keys`.
    pub fn del(&self, keys: &[&str]) {
        self.query::<()>(redis::cmd("DEL").arg(keys));
    }

    /// The milliseconds `key` has left to live (-2: no such key, -1: no expiry).
    pub fn pttl(&self, key: &str) -> i64 {
        self.query(redis::cmd("PTTL").arg(key))
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
