//! `baton push-cert`: the APNs push certificate, from nothing to uploaded.
//!
//! Apple issues MDM push certificates only for a certificate signing request signed by an MDM
//! vendor (an Apple Developer account with the "MDM CSR" capability). The flow:
//!
//! 1. `baton push-cert csr --vendor-cert V --vendor-key K --out-dir DIR` (offline): makes the
//!    push key (`DIR/push.key`, keep it), its CSR, signs the CSR with the vendor key and writes
//!    the request Apple's portal takes (`DIR/push-request.b64`: a base64 plist with
//!    `PushCertRequestCSR`, `PushCertCertificateChain`, `PushCertSignature`, SHA-256 with RSA).
//! 2. The operator uploads that file at <https://identity.apple.com/pushcert> and downloads the
//!    certificate Apple returns.
//! 3. `baton push-cert upload --cert CERT --key DIR/push.key`: sends both to the running server
//!    (`PUT /api/v1/push-certificate`) and prints topic, subject and expiry.
//! 4. `baton push-cert show`: the certificate in use, with days left.
//!
//! Renewal is the same flow with the same Apple ID; upload the renewed certificate before the
//! old one expires (the topic must stay the same, or enrolled devices stop receiving pushes).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use http::Method;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::{X509, X509NameBuilder, X509Req, X509ReqBuilder};
use serde_json::{Value, json};

use crate::cli::admin_client::{AdminClient, Connection};

/// `baton push-cert ...`.
#[derive(Debug, Args)]
pub struct PushCertArgs {
    #[command(subcommand)]
    command: PushCertCommand,
}

/// The push certificate subcommands.
#[derive(Debug, Subcommand)]
pub enum PushCertCommand {
    /// Make the push key and the vendor-signed request for Apple's push certificate portal
    /// (offline; needs your MDM vendor certificate and its key).
    Csr(CsrArgs),
    /// Upload the certificate Apple returned (with the key `csr` made) to the running server.
    Upload(UploadArgs),
    /// Show the push certificate in use: topic, subject, expiry, days left.
    Show {
        #[command(flatten)]
        conn: Connection,
    },
}

/// `baton push-cert csr`.
#[derive(Debug, Args)]
pub struct CsrArgs {
    /// Your MDM vendor certificate (PEM or DER, "MDM CSR" certificate from Apple Developer).
    #[arg(long, value_name = "FILE")]
    vendor_cert: PathBuf,
    /// The vendor certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    vendor_key: PathBuf,
    /// Certificates that complete the vendor certificate's chain, in order (Apple's WWDR
    /// intermediate, then Apple Root CA; PEM or DER); repeatable. Apple's portal expects them.
    #[arg(long = "chain", value_name = "FILE")]
    chain: Vec<PathBuf>,
    /// Directory for `push.key`, `push.csr`, `push-request.plist` and `push-request.b64`.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Common name of the push CSR [default: Baton MDM push].
    #[arg(long, value_name = "NAME", default_value = "Baton MDM push")]
    common_name: String,
    /// Replace an existing push.key in --out-dir (a certificate issued for the old key is
    /// then useless: only for a request that was never sent to Apple).
    #[arg(long)]
    force: bool,
}

/// `baton push-cert upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The certificate Apple returned (PEM or DER), or a PEM holding certificate and key.
    #[arg(long, value_name = "FILE", required_unless_present = "pkcs12")]
    cert: Option<PathBuf>,
    /// The push key (`push.key` from `baton push-cert csr`), when not in --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// A PKCS#12 file with certificate and key instead of --cert/--key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cert", "key"])]
    pkcs12: Option<PathBuf>,
    /// Password of --pkcs12 (else BATON_PUSH_CERT_PASSWORD).
    #[arg(
        long,
        env = "BATON_PUSH_CERT_PASSWORD",
        hide_env_values = true,
        requires = "pkcs12"
    )]
    password: Option<String>,
    /// Replace the certificate even when devices are enrolled with another topic (they stop
    /// receiving pushes until they re-enroll).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    conn: Connection,
}

/// Runs `baton push-cert`; exit 0 on success, 1 when the server refused, 2 on unusable input
/// or an unreachable server.
pub fn run(args: &PushCertArgs) -> ExitCode {
    let result = match &args.command {
        PushCertCommand::Csr(csr) => write_request(csr).map(|()| ExitCode::SUCCESS),
        PushCertCommand::Upload(upload) => with_runtime(upload_certificate(upload)),
        PushCertCommand::Show { conn } => with_runtime(show(conn)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("baton push-cert: {}", crate::logging::cause_chain(&e));
        ExitCode::from(2)
    })
}

fn with_runtime(
    work: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(work)
}

/// Reads a certificate file, PEM or DER.
fn read_certificate(path: &Path) -> anyhow::Result<X509> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    X509::from_pem(&bytes)
        .or_else(|_| X509::from_der(&bytes))
        .with_context(|| format!("{} is not a PEM or DER certificate", path.display()))
}

/// The push request Apple's portal takes: the CSR (DER, base64), the vendor chain (PEM) and
/// the vendor's SHA-256/RSA signature over the CSR's DER, as a plist.
pub fn push_request_plist(
    csr: &X509Req,
    vendor_chain: &[X509],
    vendor_key: &PKey<Private>,
) -> anyhow::Result<Vec<u8>> {
    let csr_der = csr.to_der()?;
    let mut signer = Signer::new(MessageDigest::sha256(), vendor_key)?;
    signer.update(&csr_der)?;
    let signature = signer.sign_to_vec()?;
    let mut chain = String::new();
    for cert in vendor_chain {
        chain.push_str(std::str::from_utf8(&cert.to_pem()?)?);
    }
    let mut dict = plist::Dictionary::new();
    dict.insert(
        "PushCertRequestCSR".into(),
        plist::Value::String(B64.encode(&csr_der)),
    );
    dict.insert(
        "PushCertCertificateChain".into(),
        plist::Value::String(chain),
    );
    dict.insert(
        "PushCertSignature".into(),
        plist::Value::String(B64.encode(signature)),
    );
    let mut out = Vec::new();
    plist::Value::Dictionary(dict)
        .to_writer_xml(&mut out)
        .context("writing the plist")?;
    Ok(out)
}

fn write_request(args: &CsrArgs) -> anyhow::Result<()> {
    let vendor = read_certificate(&args.vendor_cert)?;
    let key_pem = std::fs::read(&args.vendor_key)
        .with_context(|| format!("cannot read {}", args.vendor_key.display()))?;
    let vendor_key = PKey::private_key_from_pem(&key_pem)
        .with_context(|| format!("{} is not a PEM private key", args.vendor_key.display()))?;
    if !vendor.public_key()?.public_eq(&vendor_key) {
        bail!(
            "{} is not the key of {} (the public keys differ)",
            args.vendor_key.display(),
            args.vendor_cert.display()
        );
    }
    let expires = vendor.not_after().to_string();
    let now = openssl::asn1::Asn1Time::days_from_now(0)?;
    if vendor.not_after() < now {
        bail!("the vendor certificate expired on {expires}; renew it at developer.apple.com");
    }
    let mut chain = vec![vendor.clone()];
    for path in &args.chain {
        chain.push(read_certificate(path)?);
    }
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let key_path = args.out_dir.join("push.key");
    if key_path.exists() && !args.force {
        bail!(
            "{} exists: a certificate Apple issues for it would be useless with a new key; \
             use another --out-dir, or --force if that request was never sent to Apple",
            key_path.display()
        );
    }
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", &args.common_name)?;
    let name = name.build();
    let mut req = X509ReqBuilder::new()?;
    req.set_version(0)?;
    req.set_subject_name(&name)?;
    req.set_pubkey(&key)?;
    req.sign(&key, MessageDigest::sha256())?;
    let csr = req.build();
    let plist = push_request_plist(&csr, &chain, &vendor_key)?;

    write_private(&key_path, &key.private_key_to_pem_pkcs8()?)?;
    let files = [
        ("push.csr", csr.to_pem()?),
        ("push-request.plist", plist.clone()),
        ("push-request.b64", B64.encode(&plist).into_bytes()),
    ];
    for (name, bytes) in files {
        let path = args.out_dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let subject = name_text(vendor.subject_name());
    let mut out = std::io::stdout().lock();
    writeln!(out, "Vendor certificate: {subject} (expires {expires})")?;
    writeln!(
        out,
        "Push key: {} (keep it secret and keep it: renewals need no new key, uploads need it)",
        key_path.display()
    )?;
    writeln!(
        out,
        "Request for Apple: {}",
        args.out_dir.join("push-request.b64").display()
    )?;
    if args.chain.is_empty() {
        writeln!(
            out,
            "Note: no --chain given: the request carries only the vendor certificate; if Apple's \
             portal refuses it, add --chain AppleWWDRCA.cer --chain AppleIncRootCertificate.cer \
             (from https://www.apple.com/certificateauthority/)"
        )?;
    }
    writeln!(out, "Next:")?;
    writeln!(
        out,
        "  1. sign in at https://identity.apple.com/pushcert with a company Apple ID, \"Create a \
         Certificate\", upload push-request.b64, download the .pem"
    )?;
    writeln!(
        out,
        "  2. baton push-cert upload --cert <downloaded .pem> --key {}",
        key_path.display()
    )?;
    Ok(())
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn name_text(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .filter_map(|e| {
            let field = e.object().nid().short_name().ok()?;
            let value = e.data().to_string().ok()?;
            Some(format!("{field}={value}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn upload_body(args: &UploadArgs) -> anyhow::Result<Value> {
    if let Some(p12) = &args.pkcs12 {
        let der = std::fs::read(p12).with_context(|| format!("cannot read {}", p12.display()))?;
        return Ok(json!({"pkcs12": B64.encode(der), "password": args.password}));
    }
    let Some(cert_path) = &args.cert else {
        bail!("give --cert (and --key) or --pkcs12");
    };
    let bytes =
        std::fs::read(cert_path).with_context(|| format!("cannot read {}", cert_path.display()))?;
    // Apple's download is PEM; a DER certificate is turned into PEM here.
    let cert_pem = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        String::from_utf8(bytes).context("the certificate file is not text")?
    } else {
        String::from_utf8(read_certificate(cert_path)?.to_pem()?)?
    };
    let key_pem = match &args.key {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => None,
    };
    Ok(json!({"cert_pem": cert_pem, "key_pem": key_pem}))
}

async fn upload_certificate(args: &UploadArgs) -> anyhow::Result<ExitCode> {
    let body = upload_body(args)?;
    let client = AdminClient::new(&args.conn)?;
    let path = if args.force {
        "/push-certificate?force=true"
    } else {
        "/push-certificate"
    };
    let answer = client.call(Method::PUT, path, Some(&body)).await?;
    Ok(print_answer(answer.status, &answer.body, "uploaded"))
}

async fn show(conn: &Connection) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(conn)?;
    let answer = client.call(Method::GET, "/push-certificate", None).await?;
    if answer.status == 404 {
        eprintln!(
            "baton push-cert: no push certificate: devices cannot enroll; see `baton push-cert \
             csr --help` and docs/operations.md"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(print_answer(answer.status, &answer.body, "in use"))
}

/// Prints a certificate view (or the server's error) and returns the exit code.
fn print_answer(status: u16, body: &[u8], what: &str) -> ExitCode {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let message = json["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        eprintln!("baton push-cert: the server answered {status}: {message}");
        return ExitCode::from(1);
    }
    let text = |k: &str| json[k].as_str().unwrap_or("?").to_owned();
    println!("Push certificate {what}");
    println!("  topic:   {}", text("topic"));
    println!("  subject: {}", text("subject"));
    println!(
        "  expires: {} ({} days left, {})",
        text("not_after"),
        json["days_left"],
        text("expiry")
    );
    if let Some(warning) = json["warning"].as_str() {
        println!("  warning: {warning}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use openssl::x509::X509Builder;

    use super::*;

    fn self_signed(cn: &str) -> (X509, PKey<Private>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    /// What Apple's portal checks: the signature over the CSR's DER verifies with the first
    /// certificate of the chain.
    #[test]
    fn the_request_is_signed_by_the_vendor_over_the_csr() {
        let dir = tempfile::tempdir().unwrap();
        let (vendor, vendor_key) = self_signed("MDM Vendor: Example");
        std::fs::write(dir.path().join("v.pem"), vendor.to_pem().unwrap()).unwrap();
        std::fs::write(
            dir.path().join("v.key"),
            vendor_key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
        let args = CsrArgs {
            vendor_cert: dir.path().join("v.pem"),
            vendor_key: dir.path().join("v.key"),
            chain: vec![],
            out_dir: dir.path().join("out"),
            common_name: "Baton MDM push".into(),
            force: false,
        };
        write_request(&args).unwrap();
        let b64 = std::fs::read_to_string(dir.path().join("out/push-request.b64")).unwrap();
        let plist: plist::Dictionary = plist::from_bytes(&B64.decode(b64.trim()).unwrap()).unwrap();
        let csr_der = B64
            .decode(plist["PushCertRequestCSR"].as_string().unwrap())
            .unwrap();
        let csr = X509Req::from_der(&csr_der).unwrap();
        let key =
            PKey::private_key_from_pem(&std::fs::read(dir.path().join("out/push.key")).unwrap())
                .unwrap();
        assert!(csr.verify(&key).unwrap(), "the CSR is for push.key");
        let chain = X509::stack_from_pem(
            plist["PushCertCertificateChain"]
                .as_string()
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let signature = B64
            .decode(plist["PushCertSignature"].as_string().unwrap())
            .unwrap();
        let vendor_public = chain[0].public_key().unwrap();
        let mut verifier =
            openssl::sign::Verifier::new(MessageDigest::sha256(), &vendor_public).unwrap();
        verifier.update(&csr_der).unwrap();
        assert!(verifier.verify(&signature).unwrap());
        // A second run would replace the key: refused without --force.
        let error = write_request(&args).unwrap_err().to_string();
        assert!(error.contains("push.key exists"), "{error}");
        // A key that is not the vendor certificate's is refused.
        let (_, other_key) = self_signed("other");
        std::fs::write(
            dir.path().join("v.key"),
            other_key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
        let error = write_request(&CsrArgs {
            out_dir: dir.path().join("out2"),
            ..args
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("is not the key of"), "{error}");
    }
}
