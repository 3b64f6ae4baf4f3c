// The bench's keep-alive upstream: runs inside the pod (Node 22 copied into a scratch image), answers every
// request with a small fixed body on connections it keeps open, like most application servers do.
//   GET /sockets  connections accepted so far (to see whether a client reuses them)
//   WORK_US=N     burn N µs of CPU per request (an application doing some work; default 0)
import http from "node:http";

const body = Buffer.from("hello from the pod\n");
const workUs = Number(process.env.WORK_US ?? 0);
let sockets = 0;

function work() {
  if (workUs <= 0) return;
  const end = performance.now() + workUs / 1000;
  while (performance.now() < end) {
    // busy: a request handler computing its answer
  }
}

const server = http.createServer({ keepAliveTimeout: 120_000, noDelay: true }, (req, res) => {
  req.resume();
  if (req.url === "/sockets") {
    const s = `${sockets}\n`;
    res.writeHead(200, { "content-type": "text/plain", "content-length": s.length });
    res.end(s);
    return;
  }
  work();
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.headersTimeout = 60_000;
server.on("connection", () => {
  sockets++;
});
server.listen(Number(process.env.PORT ?? 8080), "0.0.0.0");
process.on("SIGTERM", () => process.exit(0));
