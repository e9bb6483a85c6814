//! The cluster's certificates and keys, generated fresh for every cluster.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::Error;

/// The first address of the Service range, which the `kubernetes` Service gets.
pub(crate) const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// Paths of the generated PEM files.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) admin_cert: PathBuf,
    pub(crate) admin_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_public_key: PathBuf,
}

/// Writes a CA, an apiserver serving certificate for 127.0.0.1, an admin client certificate in
/// `system:masters` and a service-account signing key pair (all ECDSA P-256) into `dir`.
pub(crate) fn generate(dir: &Path) -> Result<Pki, Error> {
    let write = |name: &str, contents: String| -> Result<PathBuf, Error> {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .map_err(Error::io(format!("writing {}", path.display())))?;
        Ok(path)
    };

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sluice-localcluster-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
    ])?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(KUBERNETES_SERVICE_IP)));
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "sluice-localcluster-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    let service_account = KeyPair::generate()?;

    Ok(Pki {
        ca_cert: write("ca.crt", ca_cert.pem())?,
        serving_cert: write("apiserver.crt", serving_cert.pem())?,
        serving_key: write("apiserver.key", serving_key.serialize_pem())?,
        admin_cert: write("admin.crt", admin_cert.pem())?,
        admin_key: write("admin.key", admin_key.serialize_pem())?,
        service_account_key: write("sa.key", service_account.serialize_pem())?,
        service_account_public_key: write("sa.pub", service_account.public_key_pem())?,
    })
}
