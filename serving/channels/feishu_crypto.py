"""Feishu/Lark event cryptography.

Encrypted events: base64 of a 16-byte IV followed by AES-256-CBC ciphertext (PKCS#7),
keyed with SHA-256 of the Encrypt Key. Signature: hex SHA-256 of timestamp, nonce,
Encrypt Key and the raw body, concatenated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from serving.channels.cipher import CipherError, cbc_decrypt, cbc_encrypt, pad, unpad


def _key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode()).digest()


def decrypt(encrypt_key: str, encrypted: str) -> str:
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except binascii.Error:
        raise CipherError("ciphertext is not base64") from None
    if len(raw) < 32:
        raise CipherError("ciphertext too short")
    plain = unpad(cbc_decrypt(_key(encrypt_key), raw[:16], raw[16:]), 16)
    try:
        return plain.decode()
    except UnicodeDecodeError:
        raise CipherError("event is not UTF-8") from None


def encrypt(encrypt_key: str, text: str, iv: bytes | None = None) -> str:
    iv = iv or os.urandom(16)
    return base64.b64encode(
        iv + cbc_encrypt(_key(encrypt_key), iv, pad(text.encode(), 16))).decode()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def verify(given: str, timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> bool:
    return hmac.compare_digest(signature(timestamp, nonce, encrypt_key, body), given.lower())
