import os

OPENAI_KEY = os.environ.get("OPENAI_KEY")
client = Client(api_key="sk-ant-admin01-{{b64url:93}}AA")
