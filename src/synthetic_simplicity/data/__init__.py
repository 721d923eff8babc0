"""Stage data: real images (MNIST, CAMUS, chest X-ray sites) into the image-set contract; fixture trees."""
