-- wrk script: PUT a JSON body from $WRK_BODY to one of 10000 keys chosen at random per request
-- (the URL's path must end with the key prefix, e.g. /api/v1/data/bench/key-).
wrk.method = "PUT"
wrk.body = os.getenv("WRK_BODY") or '{"value":1}'
wrk.headers["Content-Type"] = "application/json"

request = function()
  return wrk.format(nil, wrk.path .. math.random(0, 9999))
end
