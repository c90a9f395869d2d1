"""WeCom callback cryptography: `msg_signature` and the EncodingAESKey message format.

Plaintext layout: 16 random bytes, the message length (4 bytes, network order), the
message, the receive id (the CorpID); PKCS#7-padded to 32 bytes; AES-256-CBC with the
key's first 16 bytes as IV; base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from serving.channels.cipher import CipherError, cbc_decrypt, cbc_encrypt, pad, unpad

BLOCK = 32


class WrongReceiver(ValueError):
    """The message decrypted but was meant for another corp or application."""


class WeComCrypto:
    def __init__(self, token: str, encoding_aes_key: str, receive_id: str):
        self._token = token
        self._key = base64.b64decode(encoding_aes_key + "=")
        self._receive_id = receive_id.encode()

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        joined = "".join(sorted([self._token, timestamp, nonce, encrypted]))
        return hashlib.sha1(joined.encode()).hexdigest()

    def verify(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bool:
        return hmac.compare_digest(self.signature(timestamp, nonce, encrypted),
                                   signature.lower())

    def decrypt(self, encrypted: str) -> str:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except binascii.Error:
            raise CipherError("ciphertext is not base64") from None
        plain = unpad(cbc_decrypt(self._key, self._key[:16], raw), BLOCK)
        if len(plain) < 20:
            raise CipherError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receiver = plain[20:20 + length], plain[20 + length:]
        if len(message) != length:
            raise CipherError("message length field is wrong")
        if not hmac.compare_digest(receiver, self._receive_id):
            raise WrongReceiver("receive id does not match this application")
        try:
            return message.decode()
        except UnicodeDecodeError:
            raise CipherError("message is not UTF-8") from None

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        body = message.encode()
        plain = ((random_prefix or os.urandom(16)) + struct.pack(">I", len(body)) + body
                 + self._receive_id)
        return base64.b64encode(
            cbc_encrypt(self._key, self._key[:16], pad(plain, BLOCK))).decode()
