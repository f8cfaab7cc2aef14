// Placeholder until fbproc lands (issue 15).
#include <cstdio>
int main() {
  std::fprintf(stderr, "fbproc: not built yet\n");
  return 2;
}
