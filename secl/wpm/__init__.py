"""The image owner's side of workload confidentiality: ``secl-wpm``.

An image owner encrypts a VM image with a key held by the key broker, so that only a host whose TPM has
proven it trusted ever gets the key, and QEMU on that host opens the encrypted image itself. This package
holds the encryption engine (``luksimage``: a LUKS1 volume or a LUKS-encrypted qcow2, written by
``qemu-img``), the key (``imagekey``: the broker's AES-256 key and the LUKS passphrase derived from it;
``keysource``: where the key comes from), the digest and image flavor the central registers
(``imagedigest``, ``image_flavor``), and the ``secl-wpm`` command line (``cli``).

Nothing here imports the central, a daemon or Flask: an image owner installs only the core distribution.
"""
