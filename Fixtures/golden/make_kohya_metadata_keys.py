#!/usr/bin/env python3
"""The ss_* keys sd-scripts' train_network.py writes into every LoRA it saves, for lora-train's metadata test.

    SD_SCRIPTS=/path/to/sd-scripts python3 Fixtures/golden/make_kohya_metadata_keys.py

They are the keys of the dict literal that train_network.py's train() assigns to `metadata` before it adds the
dataset's keys (which depend on the dataset: ss_datasets with a dataset config, ss_resolution … without one)
and the optional ones (ss_network_args, ss_vae_*). Read with ast from the source, not by importing it (that
needs the whole torch stack). Writes Fixtures/golden/kohya_metadata_keys.txt, one key per line.
"""
import ast
import os
import subprocess

root = os.environ["SD_SCRIPTS"]
tree = ast.parse(open(os.path.join(root, "train_network.py"), encoding="utf-8").read())
keys = None
for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
            isinstance(t, ast.Name) and t.id == "metadata" for t in node.targets):
        found = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
        if "ss_session_id" in found:
            keys = found
assert keys, "train_network.py has no `metadata = {\"ss_session_id\": …}` literal any more"
commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kohya_metadata_keys.txt")
with open(out, "w") as f:
    f.write(f"# ss_* keys of train_network.py's metadata literal (sd-scripts {commit or 'unknown commit'}); made by make_kohya_metadata_keys.py\n")
    for k in keys:
        f.write(k + "\n")
print(f"{len(keys)} keys")
