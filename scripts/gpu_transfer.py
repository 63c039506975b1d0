#!/usr/bin/env python3
"""Bring a pretrained HF folder back from the GPU machine within its limits on returned files (at most 8
files, each <= 16 MiB, no deeper than OUT/a/b/file) and rebuild it here.

    python3 scripts/gpu_transfer.py pack runs/x/hf OUT [--prefix model]   # on the GPU machine (gpu_job.sh)
    python3 scripts/gpu_transfer.py unpack OUT runs/gpu_model             # here: a folder load_mlm reads

pack writes OUT/model_meta.tar (config.json, vocab.txt, tokenizer_config.json, pretrain_log.json when
present, transfer.json) and the weights as float16 safetensors cut into OUT/model_fp16.safetensors.NNN
parts of at most --part-mib MiB. unpack checks the parts' sha256, joins them and writes model.safetensors
in float32 (as pretrain_mlm exports it; --fp16 keeps half precision), config.json, vocab.txt and
tokenizer_config.json: a folder that few_shot.loading.load_mlm and transformers' BertForMaskedLM load.
"""
import argparse
import glob
import hashlib
import io
import json
import os
import sys
import tarfile

META_TAR = "model_meta.tar"
PARTS = "model_fp16.safetensors"
META_FILES = ("config.json", "vocab.txt", "tokenizer_config.json")
EXTRA_FILES = ("pretrain_log.json",)
TOKENIZER_CONFIG = {"do_lower_case": True, "tokenizer_class": "BertTokenizer"}


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def to_dtype(tensors, dtype):
    import numpy as np
    return {k: (v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v) for k, v in tensors.items()}


def pack(folder, out, part_mib=15.0, extra=()):
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file, save

    weights = os.path.join(folder, "model.safetensors")
    with safe_open(weights, framework="numpy") as f:
        metadata = f.metadata() or {"format": "pt"}
    tensors = to_dtype(load_file(weights), np.float16)
    blob = save(tensors, metadata=metadata)
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, PARTS + ".*")):
        os.remove(old)
    size = int(part_mib * 2 ** 20)
    parts = []
    for i, start in enumerate(range(0, len(blob), size)):
        name = f"{PARTS}.{i:03d}"
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob[start:start + size])
        parts.append(name)
    info = {"parts": parts, "bytes": len(blob), "sha256": sha256_bytes(blob), "dtype": "float16",
            "source": os.path.abspath(folder), "tensors": len(tensors),
            "parameters": int(sum(v.size for v in tensors.values()))}
    with tarfile.open(os.path.join(out, META_TAR), "w") as tar:
        for name in META_FILES + EXTRA_FILES:
            path = os.path.join(folder, name)
            if not os.path.exists(path):
                for other in extra:
                    if os.path.basename(other) == name and os.path.exists(other):
                        path = other
            if os.path.exists(path):
                tar.add(path, arcname=name)
            elif name == "tokenizer_config.json":
                _add_bytes(tar, name, json.dumps(TOKENIZER_CONFIG, indent=2).encode())
        _add_bytes(tar, "transfer.json", json.dumps(info, indent=1).encode())
    return info


def _add_bytes(tar, name, data):
    member = tarfile.TarInfo(name)
    member.size = len(data)
    tar.addfile(member, io.BytesIO(data))


def unpack(src, dest, fp16=False):
    import numpy as np
    from safetensors.numpy import load, save_file

    with tarfile.open(os.path.join(src, META_TAR)) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile() and "/" not in m.name and ".." not in m.name}
        info = json.loads(tar.extractfile(members["transfer.json"]).read())
        os.makedirs(dest, exist_ok=True)
        for name, member in members.items():
            if name != "transfer.json":
                with open(os.path.join(dest, name), "wb") as f:
                    f.write(tar.extractfile(member).read())
    blob = b"".join(open(os.path.join(src, name), "rb").read() for name in info["parts"])
    if len(blob) != info["bytes"] or sha256_bytes(blob) != info["sha256"]:
        raise SystemExit(f"error: the parts in {src} do not rebuild the weights (got {len(blob)} bytes, expected "
                         f"{info['bytes']}; sha256 mismatch); fetch all of {', '.join(info['parts'])} again")
    tensors = load(blob)
    if not fp16:
        tensors = to_dtype(tensors, np.float32)
    save_file(tensors, os.path.join(dest, "model.safetensors"), metadata={"format": "pt"})
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="HF folder -> OUT/model_meta.tar + float16 weight parts")
    a.add_argument("folder")
    a.add_argument("out")
    a.add_argument("--part-mib", type=float, default=15.0)
    a.add_argument("--extra", nargs="*", default=(), help="files to add to the tar when the folder lacks them "
                                                         "(e.g. the run's pretrain_log.json)")
    b = sub.add_parser("unpack", help="OUT (what came back) -> an HF folder")
    b.add_argument("src")
    b.add_argument("dest")
    b.add_argument("--fp16", action="store_true", help="keep the weights in float16")
    args = p.parse_args(argv)
    if args.command == "pack":
        info = pack(args.folder, args.out, args.part_mib, args.extra)
        print(f"packed {args.folder}: {info['parameters']:,} parameters, {info['bytes']:,} bytes fp16 in "
              f"{len(info['parts'])} part(s) + {META_TAR}")
    else:
        info = unpack(args.src, args.dest, args.fp16)
        print(f"unpacked {len(info['parts'])} part(s) into {args.dest} ({info['parameters']:,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
