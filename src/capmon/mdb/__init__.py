"""The markers database (MDB): per parcel, per acquisition, per signal statistics."""
