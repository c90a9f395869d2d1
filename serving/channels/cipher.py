"""AES-256-CBC with PKCS#7 padding, as the WeCom and Feishu callbacks use it."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class CipherError(ValueError):
    """Ciphertext that does not decrypt to a well-formed message: tampered or wrong key."""


def pad(data: bytes, block: int) -> bytes:
    amount = block - len(data) % block
    return data + bytes([amount]) * amount


def unpad(data: bytes, block: int) -> bytes:
    if not data:
        raise CipherError("empty plaintext")
    amount = data[-1]
    # Every padding byte is checked, not only the last one.
    if not 1 <= amount <= block or data[-amount:] != bytes([amount]) * amount:
        raise CipherError("bad padding")
    return data[:-amount]


def cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % 16:
        raise CipherError("ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()
