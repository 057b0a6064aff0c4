"""Typed configuration: one declaration per attribute gives the Terraform schema entry and
its validation (fields.py); each CRUD call parses planned or prior state once into the
typed objects of models.py and passes those down."""
