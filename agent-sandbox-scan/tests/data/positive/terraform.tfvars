do_token = "dop_v1_{{hex:64}}"
cloudflare_api_token = "{{b62:40}}"
