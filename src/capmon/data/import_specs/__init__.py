"""Import specs shipped with capmon (`capmon mdb import --spec <name>`)."""
