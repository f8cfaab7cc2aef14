// Placeholder until fbreplay lands (issue 15).
#include <cstdio>
int main() {
  std::fprintf(stderr, "fbreplay: not built yet\n");
  return 2;
}
