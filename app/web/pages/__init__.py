"""HTML pages (Jinja2). The full self-service UI grows here; this release has login and home."""

from app.web.pages.home import home, login_form, login_submit, logout
from app.web.pages.schedules import SCHEDULE_PAGE_HANDLERS

PAGE_HANDLERS = [home, login_form, login_submit, logout, *SCHEDULE_PAGE_HANDLERS]
