-- wrk script: PUT with a JSON body from $WRK_BODY.
wrk.method = "PUT"
wrk.body = os.getenv("WRK_BODY") or '{"value":1}'
wrk.headers["Content-Type"] = "application/json"
