//! A second CertHall process for the expiry-reminder test: on the database
//! at `--database-url`, with the time read from `--clock-file` (written by
//! the test), it runs the reminder job until killed, as `certhall serve`
//! does — through the lease (`--leased`), or without it (`--unleased`), so
//! that the test shows each reminder goes out once even when two runs
//! overlap.
//!
//! reminder-worker --database-url URL --clock-file PATH --holder NAME (--leased|--unleased)

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use certhall_domain::{Clock, Timestamp};
use certhall_notify::demo::DemoOutbox;

/// The test's clock: the milliseconds in a file the test replaces
/// atomically; the last good reading while it is being replaced.
#[derive(Debug)]
struct FileClock {
    path: PathBuf,
    last: AtomicI64,
}

impl Clock for FileClock {
    fn now(&self) -> Timestamp {
        if let Some(ms) = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
        {
            self.last.store(ms, Ordering::SeqCst);
        }
        Timestamp::from_millis(self.last.load(Ordering::SeqCst))
    }
}

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| panic!("missing {name}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--database-url");
    let holder = arg(&args, "--holder");
    let leased = args.iter().any(|a| a == "--leased");
    let clock: Arc<dyn Clock> = Arc::new(FileClock {
        path: PathBuf::from(arg(&args, "--clock-file")),
        last: AtomicI64::new(0),
    });
    let store = certhall_store::Store::connect(&url)
        .await
        .expect("database");
    let sms = Arc::new(DemoOutbox::new(store.clone(), clock.clone()));
    let services = certhall_testkit::test_services(&store, clock, "http://127.0.0.1:9", sms);
    // Tells the test this process is up.
    println!("ready");
    loop {
        let run = if leased {
            services
                .run_reminder_job(&holder, Duration::from_secs(1))
                .await
                .map(|s| s.unwrap_or_default())
        } else {
            services.send_due_reminders().await
        };
        match run {
            Ok(s) if s.delivered > 0 || s.sms_sent > 0 => println!("{holder}: {s:?}"),
            Ok(_) => {}
            Err(e) => eprintln!("{holder}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
