//! Simulated devices: an identity certificate from a test CA, a UDID, and builders for the
//! messages a device sends. Every message is signed like iOS does (detached CMS, SHA-1, signed
//! attributes, BER from a streaming encoder) with `baton_server::identity::testing`.

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    Authenticate, CheckinMessage, CommandReport, CommandUuid, Enrollment, EnrollmentKeys,
    PushMagic, PushToken, Status, TokenUpdate, Topic, to_xml,
};
use baton_server::identity::DigestAlgorithm;
use baton_server::identity::testing::{
    DeviceCertificateSpec, DeviceIdentity, SignOptions, SignatureEncoding, TestCa,
    sign_message_with,
};

/// The APNs topic the test devices report.
pub const TOPIC: &str = "com.apple.mgmt.External.2d8ab3f6-8c4e-4a7e-9d51-0a1f2b3c4d5e";

/// The test PKI: the CA the server trusts (`--device-ca`) and one it does not.
#[derive(Debug, Clone)]
pub struct Pki {
    /// Trusted device CA.
    pub trusted: TestCa,
    /// A CA the server does not know.
    pub untrusted: TestCa,
}

impl Pki {
    /// Fresh CAs.
    pub fn generate() -> Self {
        Self {
            trusted: TestCa::generate("Baton E2E Device CA").unwrap(),
            untrusted: TestCa::generate("Somebody Else's CA").unwrap(),
        }
    }

    /// A device with a certificate from the trusted CA.
    pub fn device(&self, udid: &str) -> TestDevice {
        TestDevice::new(udid, &self.trusted)
    }

    /// A device with a certificate from the untrusted CA.
    pub fn untrusted_device(&self, udid: &str) -> TestDevice {
        TestDevice::new(udid, &self.untrusted)
    }
}

/// A simulated device.
#[derive(Debug, Clone)]
pub struct TestDevice {
    /// Its UDID.
    pub udid: String,
    /// Its identity certificate and key.
    pub identity: DeviceIdentity,
}

impl TestDevice {
    /// A device `udid` with a fresh certificate from `ca`.
    pub fn new(udid: &str, ca: &TestCa) -> Self {
        let identity = ca
            .issue_device(udid, &DeviceCertificateSpec::default())
            .unwrap();
        Self {
            udid: udid.to_owned(),
            identity,
        }
    }

    /// The same UDID with another identity (e.g. a re-enrollment, or an impostor).
    pub fn with_identity(&self, other: &TestDevice) -> Self {
        Self {
            udid: self.udid.clone(),
            identity: other.identity.clone(),
        }
    }

    /// The `Mdm-Signature` value for `body` as iOS sends it: SHA-1, signed attributes with
    /// signingTime, the chain embedded, BER with indefinite lengths from a streaming encoder.
    pub fn sign(&self, body: &[u8]) -> String {
        let options = SignOptions {
            digest: DigestAlgorithm::Sha1,
            encoding: SignatureEncoding::IosBer,
            ..SignOptions::default()
        };
        sign_message_with(
            body,
            &self.identity.cert,
            &self.identity.key,
            &self.identity.chain,
            &options,
        )
        .unwrap()
    }

    /// The `Mdm-Signature` value for `body` in strict DER (SHA-1), for tests about DER clients.
    pub fn sign_der(&self, body: &[u8]) -> String {
        self.identity.sign(body, DigestAlgorithm::Sha1).unwrap()
    }

    /// (certificate DER, PKCS#8 key DER) for TLS client authentication.
    pub fn tls_identity(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.identity.cert_der().unwrap(),
            self.identity.key.private_key_to_pkcs8().unwrap(),
        )
    }

    fn enrollment(&self) -> Enrollment {
        Enrollment::new(EnrollmentKeys::device(self.udid.clone())).unwrap()
    }

    /// An Authenticate message.
    pub fn authenticate(&self) -> Vec<u8> {
        self.authenticate_as(&self.serial_number())
    }

    /// The serial number [`Self::authenticate`] reports: `SN` and the UDID's last 8 characters.
    pub fn serial_number(&self) -> String {
        format!("SN{}", &self.udid[self.udid.len().saturating_sub(8)..])
    }

    /// An Authenticate message reporting `serial` as the serial number.
    pub fn authenticate_as(&self, serial: &str) -> Vec<u8> {
        CheckinMessage::Authenticate(Authenticate {
            enrollment: self.enrollment(),
            topic: Topic::new(TOPIC).unwrap(),
            serial_number: Some(serial.to_owned()),
            // iOS sends no Model, ModelName or DeviceName here (macOS only); the server asks
            // DeviceInformation (see `Self::device_information_answer`).
            model: None,
            model_name: None,
            product_name: Some("iPhone15,2".into()),
            os_version: Some("17.5".into()),
            build_version: Some("21F79".into()),
            device_name: None,
            imei: None,
            meid: None,
            extra: Dictionary::new(),
        })
        .encode()
        .unwrap()
    }

    /// A device-channel TokenUpdate.
    pub fn token_update(&self) -> Vec<u8> {
        self.token_update_for(self.enrollment())
    }

    /// A Shared iPad user-channel TokenUpdate for `short_name`.
    pub fn user_token_update(&self, short_name: &str) -> Vec<u8> {
        self.token_update_for(
            Enrollment::new(EnrollmentKeys::shared_ipad_user(
                self.udid.clone(),
                short_name,
            ))
            .unwrap(),
        )
    }

    fn token_update_for(&self, enrollment: Enrollment) -> Vec<u8> {
        CheckinMessage::TokenUpdate(TokenUpdate {
            enrollment,
            topic: Topic::new(TOPIC).unwrap(),
            token: PushToken::new(vec![0xAB; 32]).unwrap(),
            push_magic: PushMagic::new("6C3B1E2A-9F4D-4E8B-A1C2-D3E4F5A6B7C8").unwrap(),
            unlock_token: None,
            awaiting_configuration: None,
            not_on_console: None,
            extra: Dictionary::new(),
        })
        .encode()
        .unwrap()
    }

    /// A CheckOut message.
    pub fn check_out(&self) -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), Value::String("CheckOut".into()));
        d.insert("UDID".into(), Value::String(self.udid.clone()));
        d.insert("Topic".into(), Value::String(TOPIC.into()));
        to_xml(&d).unwrap()
    }

    /// A SetBootstrapToken message escrowing `token`.
    pub fn set_bootstrap_token(&self, token: &[u8]) -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert(
            "MessageType".into(),
            Value::String("SetBootstrapToken".into()),
        );
        d.insert("UDID".into(), Value::String(self.udid.clone()));
        d.insert("BootstrapToken".into(), Value::Data(token.to_vec()));
        to_xml(&d).unwrap()
    }

    /// A GetBootstrapToken message.
    pub fn get_bootstrap_token(&self) -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert(
            "MessageType".into(),
            Value::String("GetBootstrapToken".into()),
        );
        d.insert("UDID".into(), Value::String(self.udid.clone()));
        to_xml(&d).unwrap()
    }

    /// An Idle report.
    pub fn idle(&self) -> Vec<u8> {
        CommandReport::new(self.enrollment(), Status::Idle, None)
            .encode()
            .unwrap()
    }

    /// An Error report on a command with the given ErrorChain.
    pub fn error_report(&self, uuid: &str, chain: Vec<baton_proto::ErrorChainItem>) -> Vec<u8> {
        let mut report = CommandReport::new(
            self.enrollment(),
            Status::Error,
            Some(CommandUuid::new(uuid).unwrap()),
        );
        report.error_chain = Some(chain);
        report.encode().unwrap()
    }

    /// The answer to the DeviceInformation query `uuid`: an unsupervised iPhone named
    /// "Shared iPhone".
    pub fn device_information_answer(&self, uuid: &str) -> Vec<u8> {
        let mut answers = Dictionary::new();
        for (k, v) in [
            ("ModelName", "iPhone"),
            ("DeviceName", "Shared iPhone"),
            ("Model", "MQ9T3LL/A"),
            ("ProductName", "iPhone15,2"),
            ("OSVersion", "17.5"),
            ("BuildVersion", "21F79"),
            ("SerialNumber", self.serial_number().as_str()),
        ] {
            answers.insert(k.into(), Value::String(v.to_owned()));
        }
        answers.insert("IsSupervised".into(), Value::Boolean(false));
        answers.insert("IsMultiUser".into(), Value::Boolean(false));
        let mut report = CommandReport::new(
            self.enrollment(),
            Status::Acknowledged,
            Some(CommandUuid::new(uuid).unwrap()),
        );
        report
            .response
            .insert("QueryResponses".into(), Value::Dictionary(answers));
        report.encode().unwrap()
    }

    /// A report on a command.
    pub fn report(&self, status: Status, uuid: &str) -> Vec<u8> {
        let mut report = CommandReport::new(
            self.enrollment(),
            status,
            Some(CommandUuid::new(uuid).unwrap()),
        );
        if status == Status::Acknowledged {
            report
                .response
                .insert("ProfileList".into(), Value::Array(Vec::new()));
        }
        report.encode().unwrap()
    }
}
