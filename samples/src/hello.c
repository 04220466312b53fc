/* hello.c - the smallest bdemu sample.
 *
 * Prints a greeting, every argv element, and the BDEMU_GREETING variable.
 * Exit status: argc - 1 (the number of guest arguments).
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const char *greeting = getenv("BDEMU_GREETING");

    printf("Hello from bdemu!\n");
    for (int i = 0; i < argc; i++)
        printf("argv[%d] = %s\n", i, argv[i]);
    printf("BDEMU_GREETING = %s\n", greeting ? greeting : "(unset)");
    return argc - 1;
}
