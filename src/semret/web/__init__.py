"""`semret serve`: the web pages and JSON API over a store (`semret.web.app.create_app`)."""
