"""Networks: the KL autoencoder and the paired latent denoisers (MONAI building blocks)."""
