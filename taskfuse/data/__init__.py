"""Reading images and datasets: IR/VIS I/O, pairing by name, the published dataset layouts, augmentation.

>>> from taskfuse.data import open_dataset, dataset_names
>>> from taskfuse.data.synthetic import write_scenes
>>> root = write_scenes("scenes", n_train=2, n_test=1, height=48, width=64)   # labelled scenes, MSRS layout
>>> ds = open_dataset("msrs", root, split="train")                              # or the MSRS download itself
>>> len(ds), sorted(ds[0])
(2, ['ir', 'label', 'name', 'vi', 'vi_gray'])
"""

from taskfuse.data.datasets import names as dataset_names
from taskfuse.data.datasets import open_dataset
from taskfuse.data.io import read_ir, read_vi, write_image
from taskfuse.data.pairs import Pair, find_pairs, list_images

__all__ = ["Pair", "dataset_names", "find_pairs", "list_images", "open_dataset", "read_ir", "read_vi", "write_image"]
