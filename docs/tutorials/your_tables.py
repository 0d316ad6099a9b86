# %% [markdown]
# # Your own two tables
#
# Two measurements of the same samples, one table each: files → paired rows → fit →
# embeddings → probes. The first cell writes two such files so that the script runs anywhere.
# With your own data, start at [Read and pair](#read-and-pair).
#
# The files here are a CSV table and an `.npz` archive whose rows come in another order.
# Both have a `sample_id` column, and the label columns are not features. Every reader of
# the library does the same for `.npy`, TSV, parquet, AnnData `.h5ad` and MuData `.h5mu`
# files ([Real data](../real-data.md)).

# %%
import csv
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from disentangled_ssl import DisentangledSSL, linear_probe, make_synthetic
from disentangled_ssl.data import read_multimodal

folder = Path(tempfile.mkdtemp(prefix="dssl-tables-"))

# Stand-in data: the paper's generator (a shared factor and one private factor per table).
source = make_synthetic(n_samples=8000, seed=1)
ids = np.array([f"s{k:05d}" for k in range(len(source))])

with open(folder / "modality1.csv", "w", newline="") as f:  # sample_id, 100 features, 2 labels
    writer = csv.writer(f)
    writer.writerow(["sample_id", *[f"gene{j}" for j in range(source.x1.shape[1])], "yc", "y1"])
    for k in range(len(source)):
        writer.writerow([ids[k], *np.round(source.x1[k], 5), source.labels["yc"][k],
                         source.labels["y1"][k]])

order = np.random.default_rng(0).permutation(len(source))  # the second file: another order
np.savez(folder / "modality2.npz", x=source.x2[order], sample_id=ids[order],
         y2=source.labels["y2"][order])

for line in (folder / "modality1.csv").read_text().splitlines()[:3]:
    print(line[:90] + " …")
print("modality2.npz:", {k: v.shape for k, v in np.load(folder / "modality2.npz").items()})

# %% [markdown]
# ## Read and pair
#
# `read_multimodal` reads one file per modality and checks everything before any training:
# numbers only, no missing values, unique IDs, the same IDs in every file. An error names the
# file, column and row. With `id_column` the rows are joined on the IDs and put in the order
# of the first file. `label_columns` are kept aside for evaluation, found in whichever file
# holds them.

# %%
paired = read_multimodal([folder / "modality1.csv", f"{folder / 'modality2.npz'}:x"],
                         id_column="sample_id", label_columns=["yc", "y1", "y2"])
print("views:", [v.shape for v in paired.views], "| labels:", sorted(paired.labels))
print("first ids:", paired.ids[:3], "| joined correctly:",
      bool(np.array_equal(paired.x2, source.x2)))

train, test = paired.split(test_fraction=0.2, seed=0)
print("train rows:", len(train), "| test rows:", len(test))

# %% [markdown]
# ## Fit and transform
#
# `standardize=True` scales every feature with the mean and standard deviation of the
# training rows. The scaler is stored with the model, and `transform` applies it unchanged to
# new rows. The epochs are few so that the tutorial runs in seconds; the defaults are 50 + 30.

# %%
model = DisentangledSSL(standardize=True, shared_epochs=5, specific_epochs=5,
                        random_state=0, verbose=False)
model.fit([train.x1, train.x2])
emb_train = model.transform([train.x1, train.x2])
emb_test = model.transform([test.x1, test.x2])
print({name: code.shape for name, code in emb_test.as_dict().items()})

# %% [markdown]
# ## Probe: which code holds which label
#
# A linear probe per code and label: a logistic regression fitted on the training rows and
# scored on the test rows (0.5 is chance). On your own data, use the labels you have: a
# label both modalities should know (a cell type, a diagnosis) belongs in the shared code, a
# label one modality alone measures belongs in that modality's specific code.

# %%
codes = ["shared", "specific1", "specific2"]
labels = ["yc", "y1", "y2"]
accuracy = np.array([[linear_probe(getattr(emb_train, c), train.labels, getattr(emb_test, c),
                                   test.labels)[label] for label in labels] for c in codes])

fig, ax = plt.subplots(figsize=(5.2, 3.2))
image = ax.imshow(accuracy, cmap="viridis", vmin=0.5, vmax=0.8)
for (i, j), value in np.ndenumerate(accuracy):
    ax.text(j, i, f"{value:.2f}", ha="center", va="center",
            color="white" if value < 0.7 else "black")
ax.set(xticks=range(3), xticklabels=[f"{label}\n{where}" for label, where in
                                     zip(labels, ["both", "table 1", "table 2"])],
       yticks=range(3), yticklabels=codes, title="Test accuracy of a linear probe")
fig.colorbar(image, ax=ax, label="accuracy (0.5 = chance)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The shared code holds the label both tables carry (`yc`) best. Each specific code holds
# its own table's label and nothing of the other table's. After 5 epochs at β = 1 the shared
# code still holds some of the private labels too: a larger β drops more of them, at a cost
# in `yc` ([the sweep tutorial](sweep.md) measures that trade-off).
#
# ## Keep the results
#
# Write the embeddings next to the sample IDs and save the model, which `load` restores with
# its scaler:

# %%
np.savez(folder / "embeddings.npz", sample_id=test.ids, **emb_test.as_dict())
model.save(folder / "model")
again = DisentangledSSL.load(folder / "model").transform([test.x1, test.x2])
print(sorted(p.name for p in (folder / "model").iterdir()), "| same embeddings after load:",
      bool(np.allclose(again.shared, emb_test.shared)))

# %% [markdown]
# ## The same from the command line
#
# `dssl fit` takes the same files and settings, and `dssl evaluate` probes every
# representation on a held-out split of the rows (`dssl transform --out embeddings.npz`
# writes the codes). The helper below runs a `dssl` command line in the folder of the files,
# as you would type it in a terminal.

# %%
def dssl(command: str) -> None:
    run = subprocess.run([sys.executable, "-m", "disentangled_ssl.cli", *shlex.split(command)],
                         cwd=folder, capture_output=True, text=True, check=True)
    print(run.stdout.strip())


dssl("fit --x1 modality1.csv --x2 modality2.npz:x --id-column sample_id "
     "--label-columns yc,y1,y2 --standardize --shared-epochs 5 --specific-epochs 5 "
     "--quiet --out cli-model")
dssl("evaluate --model cli-model --x1 modality1.csv --x2 modality2.npz:x "
     "--id-column sample_id --label-columns yc,y1,y2 --out metrics.json")
