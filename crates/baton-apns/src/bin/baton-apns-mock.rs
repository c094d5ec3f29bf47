//! `baton-apns-mock`: runs the mock APNs server for manual testing.
//!
//! It generates a throw-away test PKI (CA, server certificate, fake MDM push certificate) into a
//! directory, listens on a local address, requires client certificates from that CA, logs every
//! push it receives, and runs until Ctrl-C. Point Baton (or curl) at the printed URL with the
//! printed CA and push certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use baton_apns::mock::{MockApns, MockConfig, Reply};
use baton_apns::testing::TestPki;
use clap::Parser;

/// Mock APNs server (HTTP/2 + TLS with client certificates) for manual testing.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (loopback only is sensible).
    #[arg(long, default_value = "127.0.0.1:2197")]
    listen: SocketAddr,
    /// Directory to write the generated certificates into (created if missing).
    #[arg(long, default_value = "baton-apns-mock-pki")]
    dir: PathBuf,
    /// Delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Answer every push to this hex token with 410 Unregistered (repeatable).
    #[arg(long = "unregistered")]
    unregistered: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let pki = TestPki::generate().context("generating test certificates")?;
    let files = pki
        .write_to(&args.dir)
        .context("writing test certificates")?;
    let mut config = MockConfig::from_pki(&pki)?;
    config.listen = args.listen;
    let mock = MockApns::start(config).await?;
    mock.set_delay(Duration::from_millis(args.delay_ms));
    for token in &args.unregistered {
        mock.fail_token(token, Reply::new(410, "Unregistered"));
    }

    println!("mock APNs listening on {}", mock.base_url());
    println!("  topic:       {}", pki.topic);
    println!("  CA:          {}", files.ca_cert.display());
    println!("  push cert:   {}", files.push_cert.display());
    println!("  push key:    {}", files.push_key.display());
    println!("try:");
    println!(
        "  curl --http2 --cacert {} --cert {} --key {} -H 'apns-push-type: mdm' \\\n    \
         -H 'apns-topic: {}' -d '{{\"mdm\":\"test\"}}' {}/3/device/00ab",
        files.ca_cert.display(),
        files.push_cert.display(),
        files.push_key.display(),
        pki.topic,
        mock.base_url()
    );

    let mut seen = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let pushes = mock.pushes();
                for p in pushes.iter().skip(seen) {
                    let token = p.token.as_deref().unwrap_or("-");
                    println!(
                        "push connection={} status={} token={}… apns-id={}",
                        p.connection,
                        p.status,
                        &token[..token.len().min(8)],
                        p.apns_id
                    );
                }
                seen = pushes.len();
            }
        }
    }
    mock.stop();
    Ok(())
}
