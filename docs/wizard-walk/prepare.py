"""The walk's inputs: 120 Banking77 rows (the first 40 of each of three labels) and a 2-layer BERT folder.

Usage: python docs/wizard-walk/prepare.py DIR  ->  DIR/data/small.csv, DIR/models/tiny-bert/
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from advisor.backends.loading import model_source

root = Path(sys.argv[1])
(root / "data").mkdir(parents=True, exist_ok=True)
with open("examples/data/banking77/train.csv", newline="", encoding="utf-8") as source:
    rows = list(csv.DictReader(source))
by_label = defaultdict(list)
for row in rows:
    by_label[row["category"]].append(row)
chosen = [row for label in list(by_label)[:3] for row in by_label[label][:40]]
with open(root / "data" / "small.csv", "w", newline="", encoding="utf-8") as target:
    writer = csv.DictWriter(target, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(chosen)

model_dir = root / "models" / "tiny-bert"
tokenizer = AutoTokenizer.from_pretrained(model_source("all-minilm-l6-v2"))
config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                    num_attention_heads=4, max_position_embeddings=512)
torch.manual_seed(0)
BertModel(config).save_pretrained(model_dir)
tokenizer.save_pretrained(model_dir)
print(root / "data" / "small.csv", model_dir)
