"""Where the central's keys and certificates live in its state directory (all created by setup)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class KeyFiles:
    keys_dir: Path

    def _p(self, name: str) -> Path:
        return self.keys_dir / name

    @property
    def root_ca_cert(self) -> Path:
        return self._p("root-ca.pem")

    @property
    def root_ca_key(self) -> Path:
        return self._p("root-ca.key")

    @property
    def tls_cert(self) -> Path:
        return self._p("tls.pem")  # the central's certificate followed by the root CA

    @property
    def tls_key(self) -> Path:
        return self._p("tls.key")

    @property
    def token_signing_key(self) -> Path:
        return self._p("token-signing.key")

    @property
    def flavor_signing_cert(self) -> Path:
        return self._p("flavor-signing.pem")

    @property
    def flavor_signing_key(self) -> Path:
        return self._p("flavor-signing.key")

    @property
    def report_signing_cert(self) -> Path:
        return self._p("report-signing.pem")

    @property
    def report_signing_key(self) -> Path:
        return self._p("report-signing.key")

    @property
    def privacy_ca_cert(self) -> Path:
        return self._p("privacy-ca.pem")

    @property
    def privacy_ca_key(self) -> Path:
        return self._p("privacy-ca.key")

    @property
    def tag_ca_cert(self) -> Path:
        return self._p("tag-ca.pem")

    @property
    def tag_ca_key(self) -> Path:
        return self._p("tag-ca.key")

    @property
    def endorsement_cas(self) -> Path:
        return self._p("endorsement-cas.pem")

    @property
    def admin_credential(self) -> Path:
        return self._p("admin-credential")  # the first administrator's initial password, 0600
