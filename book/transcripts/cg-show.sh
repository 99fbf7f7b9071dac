cg-limit -q create lab-$$ --memory 32M --pids 5 && cg-limit -q show lab-$$ && cg-limit -q rm lab-$$
