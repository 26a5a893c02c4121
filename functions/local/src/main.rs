//! `hookline`: the engine on one machine. `serve` runs the API and the workers over an
//! embedded SQLite database; `keys create` makes an API key; `receive` prints the webhooks it
//! gets; `demo` shows the whole path once; `bench` measures it.

mod bench;
mod bench_receivers;
mod bench_time;
mod demo;
mod metrics;
mod serve;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc: the many small, short-lived allocations of HTTP and JSON handling cost less than
/// with glibc's allocator (measured in the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use hookline_core::domain::retry::{DEFAULT_DELAYS, DEFAULT_WINDOW, RetryPolicy};

#[derive(Parser)]
#[command(
    name = "hookline",
    version,
    about = "Hookline webhook engine, local mode (embedded SQLite)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct RetryArgs {
    /// How long a delivery is retried after its creation (e.g. 12h, 8s).
    #[arg(long, env = "HOOKLINE_RETRY_WINDOW", default_value = DEFAULT_WINDOW)]
    retry_window: String,
    /// Delays after each failed attempt; the last repeats (e.g. 10s,1m,5m).
    #[arg(long, env = "HOOKLINE_RETRY_DELAYS", default_value = DEFAULT_DELAYS)]
    retry_delays: String,
}

impl RetryArgs {
    fn policy(&self) -> anyhow::Result<RetryPolicy> {
        RetryPolicy::parse(&self.retry_window, &self.retry_delays).map_err(|e| {
            let setting = if e.starts_with("retry window") {
                "--retry-window / HOOKLINE_RETRY_WINDOW"
            } else {
                "--retry-delays / HOOKLINE_RETRY_DELAYS"
            };
            anyhow::anyhow!("invalid setting {setting}: {e}")
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the delivery workers.
    Serve {
        #[arg(long, env = "HOOKLINE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, env = "HOOKLINE_DB", default_value = "hookline.db")]
        db: PathBuf,
        /// Register this key for this account at start-up (ACCOUNT:KEY); repeatable.
        #[arg(long = "api-key", value_name = "ACCOUNT:KEY")]
        api_keys: Vec<String>,
        /// Let webhooks reach loopback and private addresses (development and tests only).
        #[arg(long, env = "HOOKLINE_ALLOW_PRIVATE_TARGETS")]
        allow_private_targets: bool,
        #[command(flatten)]
        retry: RetryArgs,
        /// How many jobs (attempts, advances) run at once.
        #[arg(long, env = "HOOKLINE_WORKERS", default_value_t = 64)]
        workers: usize,
        /// Attempts in flight toward one destination (an account's webhook URL) at most.
        #[arg(long, env = "HOOKLINE_DESTINATION_CONCURRENCY", default_value_t = 8,
              value_parser = clap::value_parser!(u32).range(1..=1024))]
        destination_concurrency: u32,
        /// Run the clock from this instant on (RFC 3339) instead of the real time: for tests
        /// and demos of time-based triggers (a birthday at 09:00 without waiting for 09:00).
        #[arg(long, value_name = "RFC3339", hide = true)]
        clock_start: Option<jiff::Timestamp>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// A webhook receiver that prints each request it gets.
    Receive {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// Answer 500 to the first N requests.
        #[arg(long, default_value_t = 0)]
        fail_first: usize,
        /// The status to answer with.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(100..=599))]
        status: u16,
        /// Verify each request's signature with this secret (`whsec_…`, as `GET
        /// …/steps/{stepId}/secret` shows it); one that does not verify is answered 401.
        #[arg(long, env = "HOOKLINE_RECEIVE_SECRET", value_parser = parse_secret)]
        secret: Option<String>,
    },
    /// Walk through a scenario end to end on a throw-away database, printing each step; it
    /// ends with the console's address and a key.
    Demo {
        /// Keep serving (the API, the console, the receiver) until Ctrl-C.
        #[arg(long)]
        stay: bool,
    },
    /// Measure raw HTTP throughput and Hookline's end-to-end rate and latency.
    Bench {
        /// Events to send in a burst.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Requests in flight at once (burst).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Events per request, through `POST /v1/events/batch` when more than 1 (burst).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
        batch: u16,
        /// Steady mode: this many events a second, open loop, instead of a burst.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        rate: Option<u32>,
        /// Steady mode: for this many seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Measure time-based triggers: the backfill of a birthday scenario over many stored
    /// contacts (and the API's latency meanwhile), then a minute with many birthdays due.
    BenchTime {
        /// Contacts stored before the scenario is activated.
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        /// How many of them have their birthday at the measured minute.
        #[arg(long, default_value_t = 10_000)]
        due: usize,
    },
    /// Measure how receivers are treated (SPEC §6a): a hanging neighbour, a receiver that
    /// refuses beyond 20 requests/s, a configured pace, a receiver down for 20 s.
    BenchReceivers,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for an account and print it (only this once: it is stored hashed).
    Create {
        #[arg(long)]
        account: i64,
        #[arg(long, env = "HOOKLINE_DB", default_value = "hookline.db")]
        db: PathBuf,
    },
    /// List the keys: prefix, account, created, revoked (never the keys: they are stored hashed).
    List {
        #[arg(long, env = "HOOKLINE_DB", default_value = "hookline.db")]
        db: PathBuf,
    },
    /// Revoke a key for good, by its prefix (`hk_` + 8 characters) or the whole key. A running
    /// `hookline serve` on the same database refuses it within a second.
    Revoke {
        /// The key's prefix, as `keys list` shows it, or the whole key.
        prefix: String,
        #[arg(long, env = "HOOKLINE_DB", default_value = "hookline.db")]
        db: PathBuf,
    },
}

/// Logs go to stderr; `HOOKLINE_LOG` (e.g. `debug`, `hookline_core=debug`) overrides the level.
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKLINE_LOG")
        .unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> std::process::ExitCode {
    hookline_sender::install_tls_provider();
    let cli = Cli::parse();
    // the demo and the bench print their own story; their logs are for problems only
    init_tracing(
        if matches!(
            cli.command,
            Command::Demo { .. }
                | Command::Bench { .. }
                | Command::BenchTime { .. }
                | Command::BenchReceivers
        ) {
            "warn"
        } else {
            "info"
        },
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookline: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookline: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            db,
            api_keys,
            allow_private_targets,
            retry,
            workers,
            destination_concurrency,
            clock_start,
        } => {
            let config = serve::Config {
                listen,
                db,
                api_keys: serve::parse_api_keys(&api_keys)?,
                allow_private_targets,
                policy: retry.policy()?,
                workers,
                destination_concurrency,
                clock_start,
            };
            let server = serve::start(config).await?;
            println!("hookline listening on http://{}", server.addr);
            serve::wait_for_signal().await;
            eprintln!("hookline: shutting down (finishing jobs in flight)");
            server.stop().await
        }
        Command::Keys {
            command: KeysCommand::Create { account, db },
        } => {
            let key = serve::create_key(&db, account).await?;
            println!("{key}");
            eprintln!(
                "API key {} for account {account} created; it is shown only this once.",
                hookline_core::domain::ids::key_prefix(&key)
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::List { db },
        } => {
            let keys = serve::keys_engine(&db)?
                .list_keys()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{:<14} {:>10}  {:<25} revoked",
                "prefix", "account", "created"
            );
            for k in keys {
                let prefix = if k.prefix.is_empty() {
                    "(none)".to_string()
                } else {
                    k.prefix
                };
                let time = |t: jiff::Timestamp| hookline_core::domain::time::rfc3339_seconds(t);
                println!(
                    "{prefix:<14} {:>10}  {:<25} {}",
                    k.account,
                    time(k.created_at),
                    k.revoked_at.map(time).unwrap_or_else(|| "-".into())
                );
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Revoke { prefix, db },
        } => {
            let key = serve::keys_engine(&db)?
                .revoke_key(&prefix)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {} (account {})", key.prefix, key.account);
            Ok(())
        }
        Command::Receive {
            listen,
            fail_first,
            status,
            secret,
        } => {
            let verifying = secret.is_some();
            let options = hookline_local::receiver::ReceiverOptions {
                status,
                fail_first,
                flaky_first: 0,
                print: true,
                keep: false,
                secret,
            };
            let receiver = hookline_local::receiver::Receiver::start(&listen, options).await?;
            println!(
                "receiving webhooks on {} (answering {status}{})",
                receiver.url("/"),
                if verifying {
                    "; verifying signatures, 401 when one does not verify"
                } else {
                    ""
                }
            );
            serve::wait_for_signal().await;
            Ok(())
        }
        Command::Demo { stay } => demo::run(stay).await,
        Command::BenchReceivers => bench_receivers::run().await,
        Command::BenchTime { contacts, due } => {
            bench_time::run(bench_time::Options { contacts, due }).await
        }
        Command::Bench {
            events,
            concurrency,
            batch,
            rate,
            seconds,
        } => {
            bench::run(bench::Options {
                events: events.max(1),
                concurrency: concurrency.max(1),
                batch: batch as usize,
                rate,
                seconds: seconds.max(1),
            })
            .await
        }
    }
}

fn parse_secret(text: &str) -> Result<String, String> {
    hookline_core::domain::signing::key_of(text)
        .map(|_| text.to_string())
        .ok_or_else(|| "a secret is `whsec_` followed by base64".to_string())
}

/// Waits up to `timeout` for `check` to hold, polling.
pub async fn eventually<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut check: F,
) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}
