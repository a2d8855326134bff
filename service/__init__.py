"""The bundled "engines" API service that loadkit was first built to rescue."""
