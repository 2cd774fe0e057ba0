from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/directory", tags=["directory"])
