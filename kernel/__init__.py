"""The shared kernel: configuration, errors, keys and limits, crypto, the conversation store,
logging and the GPU collector. It imports no other package of the project."""
