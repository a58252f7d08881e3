"""All crew routes in one router, for the app to include."""

from fastapi import APIRouter

from hub.crew import pages, routes

crew_router = APIRouter()
crew_router.include_router(routes.router)
crew_router.include_router(pages.router)
