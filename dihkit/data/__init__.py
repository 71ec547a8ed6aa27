"""Datasets by name (the embedded subsets, Fashion-MNIST, CIFAR-10/100, SVHN), their file
readers, the restricted unpickler for CIFAR batches and the batched on-device loader with its
augmentation. May import: ``errors``, ``files``, ``resources``."""
