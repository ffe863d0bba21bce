//! Throw-away certificates for TLS tests, made with the `openssl` program.
//!
//! One CA signs a server certificate for `127.0.0.1`/`localhost` (usable as a client certificate
//! too, as etcd's gateway needs) and a client certificate with common name `root`. Keys are
//! ECDSA P-256 in PKCS#8 PEM. Everything lives in a temporary folder removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the generated PEM files.
pub struct TestCerts {
    /// The CA certificate that signs both certificates.
    pub ca: PathBuf,
    /// Server certificate for `127.0.0.1` and `localhost` (extended key usage server + client).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate with common name `root`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCerts {
    /// Generates a CA, a server and a client certificate. Panics when `openssl` fails.
    pub fn generate() -> TestCerts {
        let dir = tempfile::tempdir().expect("create a temporary folder for certificates");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            d,
            &["req", "-x509", "-new"],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=portico-test-ca",
            ],
        );
        let server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
                          extendedKeyUsage=serverAuth,clientAuth\n\
                          basicConstraints=CA:FALSE\n";
        let client_ext = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
        for (name, cn, ext) in [
            ("server", "127.0.0.1", server_ext),
            ("client", "root", client_ext),
        ] {
            std::fs::write(d.join(format!("{name}.ext")), ext).expect("write extensions");
            let subject = format!("/CN={cn}");
            let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
            openssl(
                d,
                &["req", "-new"],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", &subject],
            );
            let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
            openssl(
                d,
                &["x509", "-req", "-in", &csr],
                &[],
                &[
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-out",
                    &pem,
                    "-extfile",
                    &ext,
                ],
            );
        }
        TestCerts {
            ca: d.join("ca.pem"),
            server_cert: d.join("server.pem"),
            server_key: d.join("server.key"),
            client_cert: d.join("client.pem"),
            client_key: d.join("client.key"),
            _dir: dir,
        }
    }
}

fn openssl(dir: &Path, cmd: &[&str], key: &[&str], rest: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(cmd)
        .args(key)
        .args(rest)
        .output()
        .expect("run openssl (package openssl)");
    assert!(
        out.status.success(),
        "openssl {cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
