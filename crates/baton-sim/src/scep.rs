//! SCEP enrollment for simulated devices, over `baton_server::enrollment::scep::client`:
//! GetCACert, then a PKCSReq signed with a throw-away self-signed certificate (BER as iOS streams
//! it, or DER: [`ScepRequest::encoding`]), then the CertRep.
//! The CPU-heavy preparation (key, CSR, envelope) is separate from the exchange so the enroll
//! benchmark can do it before the clock starts.

use baton_server::enrollment::scep::client::{
    CertRepOutcome, PkiRequest, PkiRequestParams, certificate_request, decode_cert_rep,
    generate_rsa_key, self_signed_certificate, subject_name,
};
use bytes::Bytes;
use http::Method;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::{MessageEncoding, SimError, Transport};

/// What to ask a SCEP server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepRequest {
    /// The SCEP URL (e.g. `https://host/scep`).
    pub url: String,
    /// The challenge password. A secret.
    pub challenge: Option<String>,
    /// Subject common name.
    pub common_name: String,
    /// RSA key size.
    pub key_bits: u32,
    /// How the PKCSReq and its envelope are encoded.
    pub encoding: MessageEncoding,
}

/// A request ready to send: the message and what is needed to read the reply.
#[derive(Debug)]
pub struct PreparedScep {
    /// The SCEP URL.
    pub url: String,
    /// The CA certificate the message is encrypted to.
    pub ca_cert: X509,
    /// The new key.
    pub key: PKey<Private>,
    /// The self-signed certificate that signs the request.
    pub signer: X509,
    /// The PKIOperation message.
    pub request: PkiRequest,
}

fn scep_error(e: impl std::fmt::Display) -> SimError {
    SimError::Scep(e.to_string())
}

/// `GET <url>?operation=GetCACert`.
pub async fn fetch_ca_certificate(transport: &Transport, url: &str) -> Result<X509, SimError> {
    let body = transport
        .get_ok(&format!("{url}?operation=GetCACert"))
        .await?;
    X509::from_der(&body)
        .or_else(|_| {
            // A chain comes as a degenerate PKCS#7: take its first certificate.
            openssl::pkcs7::Pkcs7::from_der(&body).and_then(|p7| {
                p7.signed()
                    .and_then(|s| s.certificates())
                    .and_then(|c| c.iter().next().map(|c| c.to_owned()))
                    .ok_or_else(openssl::error::ErrorStack::get)
            })
        })
        .map_err(|e| SimError::Scep(format!("GetCACert: {e}")))
}

/// Builds the PKCSReq (generates the key unless one is given).
pub fn prepare(
    request: &ScepRequest,
    ca_cert: &X509,
    key: Option<PKey<Private>>,
) -> Result<PreparedScep, SimError> {
    let key = match key {
        Some(k) => k,
        None => generate_rsa_key(request.key_bits).map_err(scep_error)?,
    };
    let signer = self_signed_certificate(&key, &request.common_name).map_err(scep_error)?;
    let subject = subject_name(&request.common_name).map_err(scep_error)?;
    let csr =
        certificate_request(&key, &subject, request.challenge.as_deref()).map_err(scep_error)?;
    let built = PkiRequestParams {
        encoding: request.encoding.cms(),
        ..PkiRequestParams::pkcs_req(&csr, &key, &signer, ca_cert)
    }
    .build()
    .map_err(scep_error)?;
    Ok(PreparedScep {
        url: request.url.clone(),
        ca_cert: ca_cert.clone(),
        key,
        signer,
        request: built,
    })
}

/// POSTs the message; returns the raw CertRep.
pub async fn send(transport: &Transport, prepared: &PreparedScep) -> Result<Bytes, SimError> {
    let url = format!("{}?operation=PKIOperation", prepared.url);
    let reply = transport
        .send(
            Method::POST,
            &url,
            &[("Content-Type", "application/x-pki-message")],
            Bytes::from(prepared.request.der.clone()),
        )
        .await?;
    if reply.status != 200 {
        return Err(SimError::HttpStatus {
            url,
            status: reply.status,
            body: reply.body_excerpt(),
        });
    }
    Ok(reply.body)
}

/// Reads the CertRep: the issued certificate, or why not.
pub fn finish(prepared: &PreparedScep, reply: &[u8]) -> Result<X509, SimError> {
    match decode_cert_rep(
        reply,
        &prepared.request,
        &prepared.ca_cert,
        &prepared.key,
        &prepared.signer,
    )
    .map_err(scep_error)?
    {
        CertRepOutcome::Issued(cert) => Ok(cert),
        CertRepOutcome::Failed(info) => Err(SimError::Scep(format!("refused: {info:?}"))),
        CertRepOutcome::Pending => Err(SimError::Scep("pending approval".into())),
        other => Err(SimError::Scep(format!("unexpected CertRep {other:?}"))),
    }
}

/// The whole enrollment: CA certificate, key, request, reply. Key generation runs on the
/// blocking pool.
pub async fn enroll(
    transport: &Transport,
    request: &ScepRequest,
) -> Result<(X509, PKey<Private>), SimError> {
    let ca = fetch_ca_certificate(transport, &request.url).await?;
    let req = request.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&req, &ca, None))
        .await
        .map_err(scep_error)??;
    let reply = send(transport, &prepared).await?;
    let cert = finish(&prepared, &reply)?;
    Ok((cert, prepared.key))
}

#[cfg(test)]
mod tests {
    use baton_server::identity::testing::TestCa;
    use openssl::pkcs7::{Pkcs7, Pkcs7Flags};

    use super::*;

    fn envelope(message: &[u8]) -> Vec<u8> {
        let mut content = Vec::new();
        Pkcs7::from_der(message)
            .unwrap()
            .verify(
                &openssl::stack::Stack::new().unwrap(),
                &openssl::x509::store::X509StoreBuilder::new()
                    .unwrap()
                    .build(),
                None,
                Some(&mut content),
                Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
            )
            .unwrap();
        content
    }

    #[test]
    fn pkcs_req_is_ios_ber_by_default_and_der_on_request() {
        let ca = TestCa::generate("sim scep CA").unwrap();
        let key = generate_rsa_key(2048).unwrap();
        let request = |encoding| ScepRequest {
            url: "https://mdm.example/scep".into(),
            challenge: Some("secret".into()),
            common_name: "sim".into(),
            key_bits: 2048,
            encoding,
        };
        assert_eq!(MessageEncoding::default(), MessageEncoding::IosBer);
        for (encoding, header) in [
            (MessageEncoding::default(), [0x30, 0x80]),
            (MessageEncoding::Der, [0x30, 0x82]),
        ] {
            let prepared = prepare(&request(encoding), &ca.cert, Some(key.clone())).unwrap();
            let message = &prepared.request.der;
            assert_eq!(message[..2], header, "{encoding:?} PKCSReq");
            let envelope = envelope(message);
            assert_eq!(envelope[..2], header, "{encoding:?} envelope");
            let csr = Pkcs7::from_der(&envelope)
                .unwrap()
                .decrypt(&ca.key, &ca.cert, Pkcs7Flags::BINARY)
                .unwrap();
            assert!(openssl::x509::X509Req::from_der(&csr).is_ok());
        }
    }
}
