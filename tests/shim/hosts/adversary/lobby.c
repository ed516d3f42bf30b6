/* lobby PORT — a two-player game server (blocking, single-threaded): it accepts player A and greets
 * it at once ("waiting for a second player"), then blocks in accept() for player B, greets B, and
 * starts the game. The kernel sends A's greeting when write() returns; A must not wait for B to
 * see it. (In TLS: A's greeting is written before A's handshake finished.) */
#include "../host.h"

#include <sys/time.h>

int main(int argc, char **argv) {
  if (argc < 2) die("usage: lobby PORT");
  int lfd = listen_on(atoi(argv[1]));
  ready();
  int a = accept(lfd, NULL, NULL);
  if (a < 0) die("accept");
  OBS("greet A: %s", RET(write(a, "waiting for a second player\n", 28)));
  int b = accept(lfd, NULL, NULL);
  if (b < 0) die("accept");
  OBS("greet B: %s", RET(write(b, "you are player 2\n", 17)));
  OBS("go A: %s", RET(write(a, "go\n", 3)));
  OBS("go B: %s", RET(write(b, "go\n", 3)));
  char buf[64];
  struct timeval tv = {3, 0}; /* bounds the reads (a lost greeting must not hang the test) */
  setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  OBS("A moves: %s", RET(read_line(a, buf, sizeof(buf))));
  OBS("B moves: %s", RET(read_line(b, buf, sizeof(buf))));
  OBS("close A: %s", RET(close(a)));
  OBS("close B: %s", RET(close(b)));
  return 0;
}
