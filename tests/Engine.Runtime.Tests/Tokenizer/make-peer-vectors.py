#!/usr/bin/env python3
"""Regenerates peer-vectors.tsv: tokenizations by llama.cpp itself (the peer harness, llama.cpp 80fb11ac, on the shipped vocabularies and on two
with the "default" pre-tokenizer; see
/work/shared/tools/peer/README.md) of texts chosen to reach corners the shipped vocab vectors do not: astral letters
and digits, Unicode whitespace, combining marks, CR/LF runs, contractions in upper case, special tokens with and
without parse_special, BOS/EOS with add_special. Run: python3 make-peer-vectors.py (needs setup.sh run first)."""
import json, os, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", "..", ".."))
peer = os.path.expanduser(os.environ.get("ENGINE_PEER_DIR", "~/.cache/engine-peer")) + "/cpu/ref-logits"

texts = [
    "𝒜𝒷𝒸 𝐀𝐁𝐂 𐐀𐐁 mixed𝒜text", "𝟘𝟙𝟚𝟛𝟜 ٣٤٥٦ 1234567 ²³ ⅫⅣ", "a\u00a0b\u3000c\u2009d\u0085e\u200bf",
    "e\u0301 n\u0303o Ελληνικά Привет עִבְרִית", "a\r\n\r\nb\n\n\n c \r \n", "I'LL SAY IT'S 'S 'Re 'vE x'D",
    "  leading and trailing   ", "\t\t tabs\t \n", "emoji 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 done", "中文混合English和数字123",
    "<s>hi</s> <unk> [INST] x [/INST]", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|endoftext|>after", "x" * 300 + " " + "ab" * 50, "'", "''", "'s", "don't stop", "$+<=>^~| `code` !!",
    "\ue000\U000f0000 private", "\u0378\U0001fae9 unassigned?", "\u200d\u200c\ufeff zero width", "a  b   c    d",
    "A\u030a\u212b \u1e9e\u00df", "1\n2\r3\r\n4", "end with newline\n",
    # letters, digits and punctuation new in Unicode 16 (Todhri, Garay, Kirat Rai, Sunuwar, Balinese): llama.cpp's
    # tables leave them undefined
    "ab\U000105c0\U000105c1cd 12\U00011bf0\U00011bf13 x\u1b4e\u1b4fy \U00016d40\U00016d41 \ua7cb\ua7cd!",
    "\U000105c0's \U00011bf0's x\U00016d40's \ua7cb'll",
]
vocabs = ["ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-gpt-2.gguf",
          "ggml-vocab-gpt-2.gguf+pre=default", "ggml-vocab-llama-bpe.gguf+pre=default"]


def vocab_path(vocab):
    """A "+pre=default" vocab is the file with its tokenizer.ggml.pre key renamed (same length, so nothing moves):
    llama.cpp then finds no pre-tokenizer and uses its "default" one."""
    name = vocab.split("+")[0]
    path = os.path.join(root, "models", "vocab", name)
    if "+pre=default" not in vocab:
        return path
    data = open(path, "rb").read()
    assert data.count(b"tokenizer.ggml.pre") == 1
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), "nopre-" + name)
    open(out, "wb").write(data.replace(b"tokenizer.ggml.pre", b"tokenizer.ggml.prX"))
    return out


rows = []
for vocab in vocabs:
    path = vocab_path(vocab)
    for text in texts:
        for add_special, parse_special in [(False, False), (False, True), (True, False)]:
            args = [peer, "--tokenize"] + ([] if add_special else ["--no-bos"]) + (["--parse-special"] if parse_special else []) + [path, text]
            out = subprocess.run(args, capture_output=True, check=True).stdout.decode("utf-8", "replace")
            line = next(l for l in out.splitlines() if l.startswith("tokens:"))
            rows.append(f"{vocab}\t{int(add_special)}\t{int(parse_special)}\t{json.dumps(text)}\t{line[7:].strip()}")
with open(os.path.join(here, "peer-vectors.tsv"), "w", encoding="utf-8") as f:
    f.write("# vocab\tadd_special\tparse_special\ttext (JSON)\tllama.cpp ids (80fb11ac, via shared/tools/peer ref-logits --tokenize)\n")
    f.write("\n".join(rows) + "\n")
print(len(rows), "rows")
