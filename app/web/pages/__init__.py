"""HTML pages (Jinja2). The full self-service UI grows here; this release has login and home."""

from app.web.pages.home import home, login_form, login_submit, logout

PAGE_HANDLERS = [home, login_form, login_submit, logout]
