"""Images to codes: decoding, the autoencoder, training and the bulk indexing job."""
