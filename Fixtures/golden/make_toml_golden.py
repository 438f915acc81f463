#!/usr/bin/env python3
"""TOML documents and what Python's tomllib (the reference TOML 1.0 reader,
standard library since 3.11) reads from them, or that it refuses them:
Fixtures/golden/toml/cases.json. The documents are kohya configs as the
kohya_ss GUI writes them and the TOML features such files use.

    python3 Fixtures/golden/make_toml_golden.py
"""
import json
import math
import os
import tomllib

DOCS = {
    "kohya_gui_config": '''
# written by the kohya_ss GUI
pretrained_model_name_or_path = "/models/sd15.safetensors"
train_data_dir = 'C:\\data\\img'
output_name = "mychar"
network_dim = 32
network_alpha = 16.0
learning_rate = 1e-4
unet_lr = 0.0001
text_encoder_lr = 5e-5
max_train_epochs = 10
enable_bucket = true
cache_latents = false
network_args = [ "conv_dim=4", "conv_alpha=1",]
optimizer_args = []
resolution = "512,512"
max_grad_norm = 1
noise_offset = 0.0
''',
    "sections": '''
[model_arguments]
v2 = false
pretrained_model_name_or_path = "sd15.safetensors"

[additional_network_arguments]
network_dim = 8  # rank
"network_alpha" = 4

[optimizer_arguments]
optimizer_type = "AdamW8bit"
learning_rate = 1_000e-7
''',
    "dataset_config": '''
[general]
enable_bucket = true
shuffle_caption = true
keep_tokens = 1

[[datasets]]
resolution = 512
batch_size = 4

  [[datasets.subsets]]
  image_dir = 'C:\\hoge'
  class_tokens = "hoge girl"
  num_repeats = 10

  [[datasets.subsets]]
  is_reg = true
  image_dir = '/reg'
  class_tokens = 'girl'
  num_repeats = 1

[[datasets]]
resolution = [768, 512]
[[datasets.subsets]]
image_dir = "x"
''',
    "strings_and_numbers": '''
basic = "tab\\there \\"quoted\\" \\u00e9 \\U0001F600"
literal = 'C:\\Users\\no\\escapes'
multi = """
first
second \\
    joined"""
multi_literal = \'\'\'
raw \\n here
\'\'\'
ints = [0, -17, +42, 1_000, 0xff, 0o17, 0b101]
floats = [3.14, -0.5, 6.02e23, 1E-5, +1.5, -2_000.25]
specials = [inf, -inf]
bools = [true, false]
nested = [[1, 2], ["a", 'b'], []]
inline = { a = 1, b.c = "deep", "quoted key" = true }
dotted.key.path = 7
''',
    "multiline_array": '''
network_args = [
  "conv_dim=8",   # conv rank
  "conv_alpha=4",
]
''',
}

BAD = {
    "duplicate_key": "a = 1\na = 2\n",
    "duplicate_table": "[t]\na = 1\n[t]\nb = 2\n",
    "unclosed_string": 'a = "open\n',
    "bare_string": "a = hello\n",
    "missing_value": "a =\n",
    "leading_zero": "a = 012\n",
    "text_after_value": 'a = 1 b = 2\n',
    "unclosed_array": "a = [1, 2\n",
    "bad_escape": 'a = "\\q"\n',
    # A line-ending backslash trims whitespace in multi-line strings only; in a one-line string
    # a backslash before a space, a tab or the end of the line is an unknown escape.
    "backslash_space_in_one_line_string": 'a = "x\\ y"\n',
    "backslash_tab_in_one_line_string": 'a = "x\\\ty"\n',
    "backslash_newline_in_one_line_string": 'a = "x\\\ny"\n',
    "key_is_value_then_table": "a = 1\n[a]\nb = 2\n",
}

def clean(v):
    if isinstance(v, float):
        if math.isinf(v):
            return {"float": "inf" if v > 0 else "-inf"}
        return {"float": repr(v)}
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return str(v)

cases = {"good": {}, "bad": {}}
for name, doc in DOCS.items():
    cases["good"][name] = {"toml": doc, "value": clean(tomllib.loads(doc))}
for name, doc in BAD.items():
    try:
        tomllib.loads(doc)
        raise SystemExit(f"{name} was accepted")
    except tomllib.TOMLDecodeError as e:
        cases["bad"][name] = {"toml": doc, "error": str(e)}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toml", "cases.json")
with open(out, "w") as f:
    json.dump(cases, f, indent=1, sort_keys=True, ensure_ascii=False)
print("wrote", out)
