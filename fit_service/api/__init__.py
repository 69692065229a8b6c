"""HTTP layer: flask-smorest blueprints, marshmallow schemas, problem+json errors."""
