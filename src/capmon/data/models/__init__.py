"""Trained models shipped with capmon (see MODEL_CARD.md)."""
