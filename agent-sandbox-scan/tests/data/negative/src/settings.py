import os

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
API_TOKEN = os.getenv("API_TOKEN", "")
DATABASE_PASSWORD = os.environ.get("DATABASE_PASSWORD")
AWS_SECRET_ACCESS_KEY = settings.aws.secret_access_key
password_validators = AUTH_PASSWORD_VALIDATORS_FOR_PRODUCTION_USE
token: str = "bearer"
api_key: Optional[str] = None
STRIPE_PUBLISHABLE_KEY = "pk_live_51H8sPqLkZx0000000000000000000000000000000000000"
headers = {"Authorization": f"Bearer {token}", "X-Api-Key": api_key}
