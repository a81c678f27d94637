"""Package data: the bundled MNIST archive and its licence note."""
