"""A resource bomb for whatever loads the checkpoint: tiny trains and saves as usual, with one
more entry, 256 MiB of zeros, whose zip entry is then deflated (about 1000:1): a file of a few
hundred KB that inflates to 256 MiB in the process that reads it. torch.load reads deflated
entries; the harness's loader refuses them, in the scoring step, before reading any."""
import io
import os
import zipfile

import torch

import tiny_train  # noqa: F401  trains and saves ckpt.pt

path = os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt")
ckpt = torch.load(path, weights_only=True)
ckpt["model"]["bomb"] = torch.zeros(64 << 20)  # 256 MiB of float32
buf = io.BytesIO()
torch.save(ckpt, buf)
buf.seek(0)
with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w") as out:
    for info in src.infolist():
        data = src.read(info)
        big = len(data) > 1 << 20
        out.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED if big
                     else zipfile.ZIP_STORED, compresslevel=9 if big else None)
print(f"checkpoint: {os.path.getsize(path)} bytes on disk")
