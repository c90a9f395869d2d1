"""Envelope encryption for the conversation store.

Records are sealed with a data key (AES-256-GCM, or SM4-GCM for national-standard
deployments); data keys are sealed with the master key from a 0600 file. Every
seal binds associated data, so a ciphertext moved to another row fails to open.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = {"aes-256-gcm": 32, "sm4-gcm": 16}
MASTER_KEY_BYTES = 32


class CryptoError(Exception):
    """A key file or ciphertext that cannot be used; the message says which and why."""


def seal(algorithm: str, key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    nonce = secrets.token_bytes(NONCE_BYTES)
    if algorithm == "aes-256-gcm":
        return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return nonce, body + encryptor.tag


def open_sealed(algorithm: str, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        if algorithm == "aes-256-gcm":
            return AESGCM(key).decrypt(nonce, sealed, aad)
        body, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(body) + decryptor.finalize()
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("ciphertext failed authentication (tampered, moved, or wrong key)"
                          ) from exc


def new_data_key(algorithm: str) -> bytes:
    return secrets.token_bytes(KEY_BYTES[algorithm])


def write_secret(path: Path, secret: str) -> None:
    """A new file only its owner can read; never overwrites one (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")


def create_master_key(path: Path) -> None:
    write_secret(path, secrets.token_hex(MASTER_KEY_BYTES))


def load_master_key(path: Path) -> bytes:
    """The master key; refuses a file that group or others can read or write."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise CryptoError(f"{path}: master key file not found "
                          "(`onlycs conversations init-key` creates one)") from None
    if mode & 0o077:
        raise CryptoError(f"{path}: permissions {mode:04o} are too wide; "
                          f"run `chmod 600 {path}`")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise CryptoError(f"{path}: not a hex-encoded key") from None
    if len(key) != MASTER_KEY_BYTES:
        raise CryptoError(f"{path}: master key must be {MASTER_KEY_BYTES} bytes")
    return key
