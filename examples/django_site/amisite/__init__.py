"""A minimal Django project whose views share one AMI client (see views.py)."""
